"""aiweb.entities.data: the CoNLL/IOB and JSONL readers on small inline files (valid, and
each malformed case with its line named), the conversions between tags and spans, and
offsets that always slice the text (hypothesis)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiweb.entities.data import (
    Example,
    Span,
    TokenSpan,
    align_spans,
    char_spans,
    decode_tags,
    encode_tags,
    examples_sha256,
    file_splits,
    from_tags,
    parse_conll,
    parse_jsonl,
    read_conll,
    read_examples,
    read_jsonl,
    sniff_format,
    to_tags,
    whitespace_tokens,
)
from aiweb.errors import DataFormatError, InvalidInputError

CONLL = (
    "Empire\tB-location\n"
    "State\tI-location\n"
    "Building\tI-location\n"
    "=\tO\n"
    "ESB\tB-location\n"
    "\t\n"  # WNUT17's train separates some sentences by a line holding a TAB
    "@paulwalk\tO\n"
    "met\tO\n"
    "Jane\tB-person\n"
    "\n"
)


def entities(example: Example) -> list[tuple[str, str]]:
    return example.entities()


# --------------------------------------------------------------------------- CoNLL: valid


def test_conll_sentences_text_spans_and_tokens() -> None:
    first, second = parse_conll(CONLL, source="train.conll")
    assert first.text == "Empire State Building = ESB"
    assert first.spans == (Span(0, 21, "location"), Span(24, 27, "location"))
    assert entities(first) == [("Empire State Building", "location"), ("ESB", "location")]
    assert first.token_offsets == ((0, 6), (7, 12), (13, 21), (22, 23), (24, 27))
    assert first.tokens() == ["Empire", "State", "Building", "=", "ESB"]
    assert (first.source, first.line) == ("train.conll", 1)
    assert second.text == "@paulwalk met Jane"
    assert entities(second) == [("Jane", "person")]
    assert second.line == 7


def test_conll_whitespace_separated_with_trailing_space_crlf_bom_and_blank_runs() -> None:
    # job_description_entities' layout: "token tag " lines, an empty first line
    data = "\ufeff\r\nProven O \r\nPython B-Skill \r\n\r\n\r\n\r\nSQL  B-Skill\r\n"
    examples = parse_conll(data.encode("utf-8"))
    assert [e.text for e in examples] == ["Proven Python", "SQL"]
    assert [entities(e) for e in examples] == [[("Python", "Skill")], [("SQL", "Skill")]]
    assert [e.line for e in examples] == [2, 7]


def test_conll_tab_fields_are_stripped_and_normalised() -> None:
    data = "  18\tO\tO\n\u202fOracle\tO\tB-Knowledge\nWe\x92re\tO\tO\n"
    (example,) = parse_conll(data, normalize=lambda t: t.strip().replace("\x92", "\u2019"))
    assert example.text == "18 Oracle We\u2019re"
    assert entities(example) == [("Oracle", "Knowledge")]


def test_conll_several_tag_columns_are_layers_that_may_overlap() -> None:
    data = (
        "maintain\tB-Skill\tO\n"
        "markup\tI-Skill\tB-Knowledge\n"
        "JavaScript\tI-Skill\tB-Knowledge\n"
        "and\tO\tO\n"
        "CSS\tB-Skill\tB-Knowledge\n"
    )
    (example,) = parse_conll(data)
    assert entities(example) == [
        ("maintain markup JavaScript", "Skill"),
        ("markup", "Knowledge"),
        ("JavaScript", "Knowledge"),
        ("CSS", "Knowledge"),
        ("CSS", "Skill"),
    ]
    assert to_tags(example, labels={"Skill"}) == (
        ["maintain", "markup", "JavaScript", "and", "CSS"],
        ["B-Skill", "I-Skill", "I-Skill", "O", "B-Skill"],
    )
    with pytest.raises(InvalidInputError, match="overlap"):
        to_tags(example)


def test_conll_tag_columns_pick_fields_and_docstart_is_a_boundary() -> None:
    data = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
        "-DOCSTART- -X- -X- O\n"
        "Peter NNP B-NP B-PER\n"
    )
    examples = parse_conll(data, tag_columns=[3])
    assert [entities(e) for e in examples] == [[("EU", "ORG")], [("Peter", "PER")]]
    with pytest.raises(DataFormatError, match="line 3: tag 'NNP' is not an IOB tag"):
        parse_conll(data)  # every field after the token is a tag column by default
    with pytest.raises(DataFormatError, match=r"line 3: tag column 4 is missing: the line has 4"):
        parse_conll(data, tag_columns=[4])
    with pytest.raises(InvalidInputError, match="tag_columns must be field numbers"):
        parse_conll(data, tag_columns=[0])


def test_conll_lenient_decoding_reads_iob1_and_bioes_by_conll_rules() -> None:
    data = "a I-X\nb I-X\nc I-Y\nd O\ne S-X\nf B-X\ng E-X\nh E-X\n"
    (example,) = parse_conll(data)
    assert entities(example) == [("a b", "X"), ("c", "Y"), ("e", "X"), ("f g", "X"), ("h", "X")]


def test_read_files(tmp_path: Path) -> None:
    (tmp_path / "a.conll").write_bytes(CONLL.encode())
    assert len(read_conll(tmp_path / "a.conll")) == 2
    (tmp_path / "a.jsonl").write_text('{"text": "hi Bob", "spans": [[3, 6, "PER"]]}\n')
    with pytest.raises(DataFormatError, match=r"^a\.jsonl: line 1: span 1: expected an object"):
        read_jsonl(tmp_path / "a.jsonl")
    with pytest.raises(DataFormatError, match=r"missing\.conll: cannot read file"):
        read_conll(tmp_path / "missing.conll")


# --------------------------------------------------------------------------- CoNLL: malformed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("a\tO\nb\tO\tO\n", "line 2: expected a token and a tag (as on line 1), found 3 fields"),
        ("a O\n\nb O X\n", "line 3: expected a token and a tag (as on line 1), found 3 fields"),
        ("a O O\nb O\n", "line 2: expected a token and 2 tags (as on line 1), found 2 fields"),
        ("\nlonely\n", "line 2: expected a token and a tag, found 1 field"),
        ("a\tO\n\tB-PER\n", "line 2: empty token"),
        ("a\tO\nNew York\tB-LOC\n", "line 2: token 'New York' contains whitespace"),
        ("a\tO\nb\t\tO\n", "line 2: expected a token and a tag (as on line 1), found 3 fields"),
        ("a O\nb B_PER\n", "line 2: tag 'B_PER' is not an IOB tag"),
        ("a O\nb B-\n", "line 2: tag 'B-' is not an IOB tag"),
        ("a O\nb o\n", "line 2: tag 'o' is not an IOB tag"),
        ("a O\nb U-PER\n", "line 2: tag 'U-PER' is not an IOB tag"),
        ("a\tO\tO\nb\tO\t\tO\n", "line 2: expected a token and 2 tags (as on line 1), found 4"),
        ("", "no sentences"),
        ("\n \n\t\n", "no sentences"),
    ],
)
def test_conll_malformed_names_the_line(data: str, message: str) -> None:
    with pytest.raises(DataFormatError) as excinfo:
        parse_conll(data, source="x.conll")
    assert str(excinfo.value).startswith("x.conll: ")
    assert message in str(excinfo.value)


def test_conll_empty_tag_field_in_a_tab_file() -> None:
    with pytest.raises(DataFormatError, match="line 1: field 1 \\(a tag\\) is empty"):
        parse_conll("a\t \tO\n", tag_columns=[1, 2])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("a B-PER\nb I-PER\n\nc I-PER\n", "line 4: I-PER follows the start of the sentence"),
        ("a O\nb I-PER\n", "line 2: I-PER follows O (strict IOB2: an entity starts with B-PER)"),
        ("a B-LOC\nb I-PER\n", "line 2: I-PER follows B-LOC"),
        ("a S-PER\n", "line 1: S-PER is not an IOB2 tag"),
    ],
)
def test_conll_strict_iob2(data: str, message: str) -> None:
    parse_conll(data)  # read by the CoNLL rules by default
    with pytest.raises(DataFormatError, match=re.escape(message)):
        parse_conll(data, strict=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a O\nb\xff O\n", "line 2: not valid UTF-8 (byte 0xff)"),
        (b"a O\n\xed\xa0\x80 O\n", "line 2: not valid UTF-8 (byte 0xed)"),  # an encoded surrogate
        (b"\xff\xfea\x00 \x00O\x00", "UTF-16"),
        (b"a O\nb\x00 O\n", "line 2: NUL character"),
        ("a O\n\n\nb\ud800 O\n", "line 4: lone surrogate U+D800"),
    ],
)
def test_bad_text_is_refused_with_its_line(data: str | bytes, message: str) -> None:
    for parse in (parse_conll, parse_jsonl):
        with pytest.raises(DataFormatError, match=re.escape(message)):
            parse(data)


def test_not_text_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="expected text"):
        parse_conll(123)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSONL


def test_jsonl_valid() -> None:
    data = (
        '{"text": "Anna lives in Zürich 🏔", "spans": [{"start": 14, "end": 20, "label": '
        '"LOC", "text": "Zürich"}, {"start": 0, "end": 4, "label": "PER"}], "id": 7}\n'
        "\n"
        '{"text": "nothing here", "spans": []}\n'
    )
    first, second = parse_jsonl(data, source="d.jsonl")
    assert entities(first) == [("Anna", "PER"), ("Zürich", "LOC")]
    assert first.token_offsets is None
    assert (first.source, first.line, second.line) == ("d.jsonl", 1, 3)
    assert second.spans == ()
    assert to_tags(first) == (
        ["Anna", "lives", "in", "Zürich", "🏔"],
        ["B-PER", "O", "O", "B-LOC", "O"],
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "a", "spans": [}', "line 2: not valid JSON (Expecting value at column 25)"),
        ('["a", []]', "line 2: expected a JSON object"),
        ('{"spans": []}', 'line 2: missing "text"'),
        ('{"text": 5, "spans": []}', 'line 2: "text" must be a string'),
        ('{"text": "  ", "spans": []}', 'line 2: "text" is empty'),
        ('{"text": "a"}', 'line 2: missing "spans"'),
        ('{"text": "a", "spans": {}}', 'line 2: "spans" must be a list'),
        ('{"text": "ab", "spans": [{"start": 0, "end": 1}]}', "line 2: span 1: missing label"),
        (
            '{"text": "ab", "spans": [{"start": 0, "end": 3, "label": "X"}]}',
            "line 2: span 1: end 3 is beyond the text (2 characters)",
        ),
        (
            '{"text": "ab", "spans": [{"start": -1, "end": 1, "label": "X"}]}',
            "line 2: span 1: start -1 is negative",
        ),
        (
            '{"text": "ab", "spans": [{"start": 1, "end": 1, "label": "X"}]}',
            "line 2: span 1: start 1 is not before end 1",
        ),
        (
            '{"text": "ab", "spans": [{"start": 1, "end": 0, "label": "X"}]}',
            "line 2: span 1: start 1 is not before end 0",
        ),
        (
            '{"text": "ab", "spans": [{"start": 0, "end": 1, "label": ""}]}',
            "line 2: span 1: label must be a non-empty string",
        ),
        (
            '{"text": "ab", "spans": [{"start": 0, "end": 1, "label": "a b"}]}',
            "line 2: span 1: label 'a b' contains whitespace",
        ),
        (
            '{"text": "ab", "spans": [{"start": 0, "end": 1, "label": 3}]}',
            "line 2: span 1: label must be a non-empty string",
        ),
        (
            '{"text": "ab", "spans": [{"start": 0.0, "end": 1, "label": "X"}]}',
            "line 2: span 1: start must be an integer",
        ),
        (
            '{"text": "ab", "spans": [{"start": true, "end": 1, "label": "X"}]}',
            "line 2: span 1: start must be an integer",
        ),
        (
            '{"text": "a b", "spans": [{"start": 1, "end": 2, "label": "X"}]}',
            "line 2: span 1: the span covers only whitespace",
        ),
        (
            '{"text": "Zürich", "spans": [{"start": 0, "end": 7, "label": "X", "text": "Zürich"}]}',
            "line 2: span 1: end 7 is beyond the text",
        ),
        (
            '{"text": "Zürich x", "spans": '
            '[{"start": 0, "end": 7, "label": "X", "text": "Zürich"}]}',
            "differs from text[0:7] 'Zürich ' (offsets must count characters",
        ),
        (
            '{"text": "abc", "spans": [{"start": 0, "end": 2, "label": "X"}, '
            '{"start": 1, "end": 3, "label": "Y"}]}',
            "line 2: spans [0, 2) 'X' and [1, 3) 'Y' overlap",
        ),
        (
            '{"text": "abc", "spans": [{"start": 0, "end": 2, "label": "X"}, '
            '{"start": 0, "end": 2, "label": "X"}]}',
            "line 2: span [0, 2) 'X' is given twice",
        ),
        ('{"text": "a\\u0000", "spans": []}', "line 2: NUL character in a string"),
        ('{"text": "a\\udc00", "spans": []}', "line 2: lone surrogate U+DC00 in a string"),
        (
            '{"text": "ab", "spans": [{"start": 0, "end": 1, "label": "\\ud800"}]}',
            "line 2: lone surrogate U+D800 in a string",
        ),
        ("[" * 100_000 + "]" * 100_000, "line 2: not valid JSON"),
        ('{"text": "a", "spans": [], "n": ' + "9" * 5000 + "}", "line 2: not valid JSON"),
    ],
)
def test_jsonl_malformed_names_the_line(line: str, message: str) -> None:
    data = '{"text": "fine", "spans": []}\n' + line + "\n"
    with pytest.raises(DataFormatError) as excinfo:
        parse_jsonl(data)
    assert message in str(excinfo.value)


def test_jsonl_overlaps_when_allowed_and_empty_input() -> None:
    line = json.dumps(
        {
            "text": "Azure PaaS environments",
            "spans": [
                {"start": 0, "end": 23, "label": "Skill"},
                {"start": 0, "end": 10, "label": "Knowledge"},
            ],
        }
    )
    (example,) = parse_jsonl(line, allow_overlaps=True)
    assert entities(example) == [("Azure PaaS", "Knowledge"), ("Azure PaaS environments", "Skill")]
    with pytest.raises(DataFormatError, match="empty"):
        parse_jsonl("\n\n")


# --------------------------------------------------------------------------- conversions


def test_decode_tags_and_errors() -> None:
    assert decode_tags(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "S-ORG", "E-ORG"]) == [
        TokenSpan(0, 2, "PER"),
        TokenSpan(3, 4, "LOC"),
        TokenSpan(4, 5, "LOC"),
        TokenSpan(5, 6, "ORG"),
        TokenSpan(6, 7, "ORG"),
    ]
    assert decode_tags([]) == []
    with pytest.raises(InvalidInputError, match="tag 1: tag 'X' is not an IOB tag"):
        decode_tags(["O", "X"])
    with pytest.raises(InvalidInputError, match="found a string"):
        decode_tags("B-PER")


def test_encode_tags_schemes_and_errors() -> None:
    spans = [TokenSpan(3, 4, "B"), TokenSpan(0, 3, "A")]
    assert encode_tags(5, spans) == ["B-A", "I-A", "I-A", "B-B", "O"]
    assert encode_tags(5, spans, "BIOES") == ["B-A", "I-A", "E-A", "S-B", "O"]
    assert decode_tags(encode_tags(5, spans, "BIOES")) == sorted(spans)
    with pytest.raises(InvalidInputError, match=r"\[0, 3\) 'A' and \[2, 4\) 'B' overlap"):
        encode_tags(5, [TokenSpan(0, 3, "A"), TokenSpan(2, 4, "B")])
    with pytest.raises(InvalidInputError, match="not within 5 tokens"):
        encode_tags(5, [TokenSpan(4, 6, "A")])
    with pytest.raises(InvalidInputError, match="unknown tagging scheme"):
        encode_tags(5, [], "BILOU")  # type: ignore[arg-type]


def test_alignment_modes() -> None:
    text = "New York-based  startups"
    offsets = whitespace_tokens(text)
    assert offsets == ((0, 3), (4, 14), (16, 24))
    aligned = Span(0, 14, "LOC")
    inside = Span(4, 8, "LOC")  # "York" inside the token "York-based"
    across = Span(2, 18, "X")  # from inside "New" to inside "startups"
    assert align_spans(offsets, [aligned]) == [TokenSpan(0, 2, "LOC")]
    with pytest.raises(InvalidInputError, match=r"'LOC' \('York'\) does not end at a token"):
        align_spans(offsets, [inside], text=text)
    assert align_spans(offsets, [inside], "expand") == [TokenSpan(1, 2, "LOC")]
    assert align_spans(offsets, [inside], "contract") == []
    assert align_spans(offsets, [across], "expand") == [TokenSpan(0, 3, "X")]
    assert align_spans(offsets, [across], "contract") == [TokenSpan(1, 2, "X")]
    with pytest.raises(InvalidInputError, match="overlaps no token"):
        align_spans(offsets, [Span(14, 16, "X")])
    with pytest.raises(InvalidInputError, match="unknown alignment"):
        align_spans(offsets, [], "nearest")  # type: ignore[arg-type]
    example = Example(text, (inside,), source="d.jsonl", line=9)
    with pytest.raises(InvalidInputError, match=r"^d\.jsonl: line 9: span \[4, 8\)"):
        to_tags(example)
    assert to_tags(example, alignment="expand")[1] == ["O", "B-LOC", "O"]


def test_example_checks() -> None:
    with pytest.raises(InvalidInputError, match=r"span \[0, 9\): end 9 is beyond the text"):
        Example("abc", (Span(0, 9, "X"),))
    with pytest.raises(InvalidInputError, match="is given twice"):
        Example("abc", (Span(0, 1, "X"), Span(0, 1, "X")))
    with pytest.raises(InvalidInputError, match="token 1: offsets"):
        Example("ab cd", (), ((0, 2), (1, 5)))
    with pytest.raises(InvalidInputError, match="token 0: expected two integer offsets"):
        Example("ab", (), ((0.0, 2),))  # type: ignore[arg-type]
    example = Example("b a", (Span(2, 3, "X"), Span(0, 1, "X")), source="s", line=2)
    assert example.spans == (Span(0, 1, "X"), Span(2, 3, "X"))  # sorted
    assert example == Example("b a", (Span(0, 1, "X"), Span(2, 3, "X")))  # source not compared
    assert examples_sha256([example]) == examples_sha256([Example("b a", example.spans)])
    assert examples_sha256([example]) != examples_sha256([Example("b a", example.spans[:1])])


def test_from_tags_checks() -> None:
    with pytest.raises(InvalidInputError, match="tag layer 0: 1 tags for 2 tokens"):
        from_tags(["a", "b"], ["O"])
    with pytest.raises(InvalidInputError, match="token 1: 'b c' contains whitespace"):
        from_tags(["a", "b c"], ["O", "O"])
    with pytest.raises(InvalidInputError, match="token 0: expected a non-empty string"):
        from_tags([""], ["O"])


# --------------------------------------------------------------------------- properties

TYPES = ("PER", "LOC", "creative-work")
token = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=8,
).filter(lambda t: not any(c.isspace() for c in t) and t != "-DOCSTART-")
any_tag = st.one_of(
    st.just("O"),
    st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BIES"), st.sampled_from(TYPES)),
)


@st.composite
def tagged(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    tokens = draw(st.lists(token, min_size=1, max_size=12))
    tags = draw(st.lists(any_tag, min_size=len(tokens), max_size=len(tokens)))
    return tokens, tags


@st.composite
def iob2_tags(draw: st.DrawFn, n: int) -> list[str]:
    tags: list[str] = []
    for _ in range(n):
        choices = ["O", *(f"B-{t}" for t in TYPES)]
        if tags and tags[-1] != "O":
            choices.append("I-" + tags[-1][2:])
        tags.append(draw(st.sampled_from(choices)))
    return tags


@settings(max_examples=200, deadline=None)
@given(tagged())
def test_offsets_always_slice_the_text(sample: tuple[list[str], list[str]]) -> None:
    tokens, tags = sample
    example = from_tags(tokens, tags)
    assert example.text == " ".join(tokens)
    assert example.token_offsets is not None
    assert [example.text[s:e] for s, e in example.token_offsets] == tokens
    assert example.tokens() == tokens == example.text.split()
    for span, token_span in zip(example.spans, decode_tags(tags), strict=True):
        assert example.text[span.start : span.end] == " ".join(
            tokens[token_span.start : token_span.end]
        )
    # the same through a CoNLL file (TAB and whitespace layouts) and through JSONL
    conll = "\n".join(f"{t}\t{g}" for t, g in zip(tokens, tags, strict=True)) + "\n"
    assert parse_conll(conll.encode("utf-8")) == [example]
    assert parse_conll(conll.replace("\t", "   ")) == [example]
    jsonl = json.dumps(
        {
            "text": example.text,
            "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in example.spans],
        }
    )
    (from_json,) = parse_jsonl(jsonl)
    assert (from_json.text, from_json.spans) == (example.text, example.spans)
    assert from_json.tokens() == tokens


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=15).flatmap(
        lambda n: st.tuples(st.lists(token, min_size=n, max_size=n), iob2_tags(n))
    )
)
def test_iob2_round_trips_through_spans(sample: tuple[list[str], list[str]]) -> None:
    tokens, tags = sample
    example = from_tags(tokens, tags)
    assert to_tags(example) == (tokens, tags)
    bioes = to_tags(example, scheme="BIOES")[1]
    assert from_tags(tokens, bioes) == example
    assert encode_tags(len(tags), decode_tags(bioes)) == tags


@settings(max_examples=200, deadline=None)
@given(tagged())
def test_any_tags_are_stable_after_one_trip(sample: tuple[list[str], list[str]]) -> None:
    tokens, tags = sample
    example = from_tags(tokens, tags)  # IOB1 / BIOES / broken IOB2 by the CoNLL rules
    canonical = to_tags(example)[1]
    assert decode_tags(canonical) == decode_tags(tags)
    assert to_tags(from_tags(tokens, canonical)) == (tokens, canonical)
    assert char_spans(example.token_offsets or (), decode_tags(tags)) == list(example.spans)


def test_read_examples_sniffs_the_format_from_the_content_not_the_name(tmp_path: Path) -> None:
    conll = tmp_path / "data.jsonl"  # a misleading name: the content decides
    conll.write_bytes("\ufeff\nI\tO\nknow\tO\nRust\tB-Skill\n".encode())
    assert sniff_format(conll.read_bytes()) == "conll"
    [example] = read_examples(conll)
    assert example.entities() == [("Rust", "Skill")]
    jsonl = tmp_path / "data.conll"
    jsonl.write_text(
        '  {"text": "I know Rust", "spans": [{"start": 7, "end": 11, "label": "Skill"}]}\n'
    )
    assert sniff_format(jsonl.read_bytes()) == "jsonl"
    assert read_examples(jsonl)[0].entities() == [("Rust", "Skill")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match="empty"):
        read_examples(empty)


def test_file_splits_hold_out_a_seeded_share_or_read_the_eval_file(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {"text": f"I know Rust {i}", "spans": [{"start": 7, "end": 11, "label": "Skill"}]}
        )
        for i in range(10)
    ]
    path = tmp_path / "skills.jsonl"
    path.write_text("\n".join(lines) + "\n")
    splits = file_splits(path, test_size=0.3, seed=1)
    assert (len(splits.train or []), len(splits.test or [])) == (7, 3)
    assert {e.text for e in splits.train or []}.isdisjoint(e.text for e in splits.test or [])
    assert file_splits(path, test_size=0.3, seed=1) == splits  # seeded
    assert file_splits(path, test_size=0.3, seed=2).test != splits.test
    assert splits.labels == ("Skill",)
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text(lines[0] + "\n")
    both = file_splits(path, eval_path=evaluation)
    assert (len(both.train or []), len(both.test or [])) == (10, 1)
    one = tmp_path / "one.jsonl"
    one.write_text(lines[0] + "\n")
    with pytest.raises(InvalidInputError, match="at least 2"):
        file_splits(one)
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({"text": t, "spans": []}) + "\n" for t in "abc"))
    with pytest.raises(InvalidInputError, match="no entity"):
        file_splits(plain, test_size=0.3)
