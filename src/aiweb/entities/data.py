"""Token-classification data: CoNLL/IOB and JSONL readers, one representation, and the
conversions between IOB tags and character spans.

The representation is a list of :class:`Example`: a ``text``, its entity ``spans`` as
character offsets (``text[span.start:span.end]`` is the entity's text) and, for CoNLL
input, the ``token_offsets`` of its tokens. Offsets count Unicode code points (Python
``str`` indices), not bytes or UTF-16 code units.

Formats
-------
CoNLL / IOB (:func:`parse_conll`, :func:`read_conll`)
    One token per line, then one or more tag columns; a blank (or whitespace-only) line
    ends a sentence. A line holding a TAB is split on TABs (each field stripped, so a
    token is never cut at a space), any other line on runs of whitespace. Every token line
    of a file has the same number of fields. Each tag column is one layer of IOB tags,
    decoded into spans on its own: layers may overlap (SkillSpan's Skill and Knowledge).
    ``-DOCSTART-`` lines (CoNLL-2003) end a sentence and are skipped. The ``text`` of a
    sentence is its tokens joined by single spaces. A UTF-8 BOM is skipped; LF and CRLF
    line ends are read.

    Tags are ``O`` or ``P-TYPE`` with the prefix ``P`` one of ``B``, ``I``, ``E``, ``S``
    and a non-empty ``TYPE`` without whitespace (``B-creative-work``: the type is all
    after the first ``-``). By default they are *decoded leniently, by the CoNLL rules*
    (``conlleval`` of CoNLL-2000/2003, and ``seqeval``'s default mode): IOB2, IOB1
    (``I-X`` after ``O`` or after another type starts an entity) and BIOES are all read,
    and they are read exactly as :mod:`aiweb.entities.evaluation` scores them. Real files
    need this: ``skillspan_tech_test.conll`` has an ``I-Skill`` after ``O``.
    ``strict=True`` accepts strict IOB2 only (prefixes ``B``/``I``; ``I-X`` must follow
    ``B-X`` or ``I-X``) and names the first line that breaks it.

JSONL (:func:`parse_jsonl`, :func:`read_jsonl`)
    One JSON object per line, blank lines skipped:
    ``{"text": "…", "spans": [{"start": 0, "end": 5, "label": "PER"}, …]}``. ``end`` is
    exclusive; a span may also carry ``"text"``, which must equal ``text[start:end]``
    (this catches offsets counted in bytes or UTF-16 units). Other keys are ignored.
    Spans may not overlap unless ``allow_overlaps=True`` (a single IOB layer cannot hold
    overlapping spans).

Conversions
-----------
:func:`decode_tags` (tags -> token spans, CoNLL rules), :func:`encode_tags` (token spans
-> IOB2 or BIOES tags), :func:`align_spans` (character spans -> token spans),
:func:`char_spans` (token spans -> character spans), :func:`to_tags` (an example -> its
tokens and tags), :func:`from_tags` (tokens and tag layers -> an example). Texts without
token offsets (JSONL) are tokenised on whitespace (:func:`whitespace_tokens`). A character
span that does not fall on token boundaries is handled as ``alignment`` says, with
spaCy's names (``Doc.char_span``): ``"strict"`` (the default) refuses it, ``"expand"``
grows it to the tokens it touches, ``"contract"`` shrinks it to the tokens it covers
whole (and drops it when it covers none).

Errors
------
Malformed input raises :class:`~aiweb.errors.DataFormatError` (an
:class:`~aiweb.errors.InvalidInputError`: a 422 problem in the API) naming the source,
the line and what is wrong: ``"train.conll: line 57: expected a token and a tag (as on
line 1), found 3 fields"``, ``"line 12: I-PER follows O (strict IOB2: an entity starts
with B-PER)"``, ``"line 3: not valid JSON (…)"``, ``"line 4: span 2: end 51 is beyond the
text (48 characters)"``, invalid UTF-8 (the line and the byte), a UTF-16 file, NUL characters,
lone surrogates (also as JSON ``\\u`` escapes). Never a bare exception.

Datasets
--------
:func:`load_dataset` reads the built-in token-classification datasets of
:mod:`aiweb.datasets` (``wnut17``, ``skillspan``, ``job_description_entities``) from
``AIWEB_DATA_HOME``, the cache, or their publisher, into :class:`EntitySplits`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from aiweb.config import Settings
from aiweb.datasets import (
    catalog,
    decode_utf8,
    job_description_entities,
    skillspan,
    wnut17,
)
from aiweb.errors import DataFormatError, DatasetUnavailableError, InvalidInputError

__all__ = [
    "CROSS_DOMAIN",
    "TASK",
    "Alignment",
    "CrossDomain",
    "EntitySplits",
    "Example",
    "Scheme",
    "Span",
    "TokenSpan",
    "align_spans",
    "char_spans",
    "decode_tags",
    "encode_tags",
    "examples_sha256",
    "file_splits",
    "from_tags",
    "load_cross_domain",
    "load_dataset",
    "load_directory",
    "parse_conll",
    "parse_jsonl",
    "read_conll",
    "read_examples",
    "read_jsonl",
    "sniff_format",
    "to_tags",
    "whitespace_tokens",
]

#: the registry / catalogue task of these data
TASK = "token-classification"

#: how a character span that does not fall on token boundaries is aligned (spaCy's names)
Alignment = Literal["strict", "expand", "contract"]
#: the tagging scheme :func:`encode_tags` writes
Scheme = Literal["IOB2", "BIOES"]

_PREFIXES = frozenset("BIES")
_WHITESPACE = re.compile(r"\s")
_TOKEN = re.compile(r"\S+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_DOCSTART = "-DOCSTART-"
_SHOWN = 40  # characters of a value quoted in an error message


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, order=True)
class Span:
    """An entity as character offsets into a text.

    Attributes:
        start: offset of its first character (a code point index, ``>= 0``).
        end: offset one past its last character (exclusive, ``> start``).
        label: the entity type (``"person"``, ``"Skill"``), non-empty, no whitespace.
    """

    start: int
    end: int
    label: str


@dataclass(frozen=True, order=True)
class TokenSpan:
    """An entity as token indices.

    Attributes:
        start: index of its first token.
        end: index one past its last token (exclusive, ``> start``).
        label: the entity type.
    """

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Example:
    """One text with its entities.

    Attributes:
        text: the text; for CoNLL input, its tokens joined by single spaces.
        spans: the entities, sorted by ``(start, end, label)``, without repeats;
            ``text[s.start:s.end]`` is the entity's text and never only whitespace. Spans
            of different CoNLL tag columns (or JSONL read with ``allow_overlaps``) may
            overlap.
        token_offsets: ``(start, end)`` character offsets of each token (CoNLL), in
            order and disjoint; ``None`` when the text was not given as tokens (JSONL):
            the conversions then tokenise it on whitespace.
        source: where it was read (a file name), for messages; not compared.
        line: the line it starts on in ``source`` (from 1), for messages; not compared.

    Raises:
        InvalidInputError: a span or token offset out of ``[0, len(text)]``, empty
            (``start >= end``), repeated or only whitespace, or a label that is empty or
            holds whitespace (the message names the example's line when it is known).
    """

    text: str
    spans: tuple[Span, ...] = ()
    token_offsets: tuple[tuple[int, int], ...] | None = None
    source: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidInputError(f"text must be a string, found {type(self.text).__name__}")
        where = self._where()
        for span in self.spans:
            if not isinstance(span, Span):
                raise InvalidInputError(f"{where}spans must be Span, found {type(span).__name__}")
            _check_span(self.text, span, f"{where}span [{span.start}, {span.end}): ")
        spans = tuple(sorted(self.spans))
        object.__setattr__(self, "spans", spans)
        for a, b in itertools.pairwise(spans):
            if a == b:
                raise InvalidInputError(
                    f"{where}span [{a.start}, {a.end}) {a.label!r} is given twice"
                )
        if self.token_offsets is not None:
            offsets = tuple(tuple(pair) for pair in self.token_offsets)
            size, previous = len(self.text), 0
            for i, pair in enumerate(offsets):
                if len(pair) != 2 or not all(type(x) is int for x in pair):
                    raise InvalidInputError(f"{where}token {i}: expected two integer offsets")
                start, end = pair
                if not previous <= start < end <= size:
                    raise InvalidInputError(
                        f"{where}token {i}: offsets [{start}, {end}) are not in order "
                        f"within the text ({size} characters)"
                    )
                previous = end
            object.__setattr__(self, "token_offsets", offsets)

    def _where(self) -> str:
        """``"<source>: line <n>: "``, as far as known (a prefix for messages)."""
        parts = [p for p in (self.source, f"line {self.line}" if self.line else None) if p]
        return "".join(f"{p}: " for p in parts)

    def tokens(self) -> list[str]:
        """The tokens: ``text`` sliced by ``token_offsets``, or split on whitespace."""
        offsets = self.token_offsets or whitespace_tokens(self.text)
        return [self.text[start:end] for start, end in offsets]

    def entities(self) -> list[tuple[str, str]]:
        """``(entity text, label)`` of each span, in span order."""
        return [(self.text[s.start : s.end], s.label) for s in self.spans]


@dataclass(frozen=True)
class EntitySplits:
    """A built-in token-classification dataset, by official split.

    Attributes:
        name: dataset name (``"wnut17"``).
        splits: split name -> its examples, in file order; the published splits only,
            in the order ``train``, ``dev``, ``test`` (``job_description_entities`` has
            ``test`` alone).
        labels: entity types found in any split, sorted.
    """

    name: str
    splits: dict[str, list[Example]]
    labels: tuple[str, ...]

    @property
    def train(self) -> list[Example] | None:
        """The training split, or ``None`` when there is none."""
        return self.splits.get("train")

    @property
    def dev(self) -> list[Example] | None:
        """The development (validation) split, or ``None``."""
        return self.splits.get("dev")

    @property
    def test(self) -> list[Example] | None:
        """The official test split, or ``None``."""
        return self.splits.get("test")

    def sha256(self) -> str:
        """Fingerprint of every split: sha256 hex digest of ``"<split>:<examples_sha256>\\n"``
        for each split, in order."""
        digest = hashlib.sha256()
        for split, examples in self.splits.items():
            digest.update(f"{split}:{examples_sha256(examples)}\n".encode())
        return digest.hexdigest()


def examples_sha256(examples: Iterable[Example]) -> str:
    """Fingerprint of examples, in order (for a model version's lineage).

    Returns:
        sha256 hex digest of the UTF-8 bytes of ``json.dumps([text, [[start, end, label],
        ...]], ensure_ascii=False) + "\\n"`` for each example (token offsets are not part
        of it: they follow from the text for CoNLL input).
    """
    digest = hashlib.sha256()
    for example in examples:
        row = [example.text, [[s.start, s.end, s.label] for s in example.spans]]
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


# --------------------------------------------------------------------------- checks


def _quote(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "…")


def _check_label(label: object, where: str) -> str:
    if not isinstance(label, str) or not label:
        raise InvalidInputError(f"{where}label must be a non-empty string, found {label!r}")
    if _WHITESPACE.search(label):
        raise InvalidInputError(f"{where}label {_quote(label)} contains whitespace")
    return label


def _check_span(text: str, span: Span, where: str) -> None:
    start, end = span.start, span.end
    if type(start) is not int or type(end) is not int:
        raise InvalidInputError(f"{where}start and end must be integers")
    if start < 0:
        raise InvalidInputError(f"{where}start {start} is negative")
    if end > len(text):
        raise InvalidInputError(f"{where}end {end} is beyond the text ({len(text)} characters)")
    if start >= end:
        raise InvalidInputError(f"{where}start {start} is not before end {end}")
    if not text[start:end].strip():
        raise InvalidInputError(f"{where}the span covers only whitespace")
    _check_label(span.label, where)


def _split_tag(tag: str) -> tuple[str, str]:
    """``(prefix, type)`` of a tag; ``("O", "")`` for ``O``.

    Raises:
        ValueError: the tag is not ``O`` nor ``B-``/``I-``/``E-``/``S-`` + a type.
    """
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[0] in _PREFIXES and tag[1] == "-" and not _WHITESPACE.search(tag):
        return tag[0], tag[2:]
    raise ValueError(
        f"tag {_quote(tag)} is not an IOB tag (expected O, or B-, I-, E- or S- and a type)"
    )


def _decode(parsed: Sequence[tuple[str, str]]) -> list[TokenSpan]:
    """Chunks of ``(prefix, type)`` pairs by the CoNLL rules (seqeval's default mode)."""
    spans: list[TokenSpan] = []
    start = 0
    prev_p, prev_t = "O", ""
    for i, (p, t) in enumerate([*parsed, ("O", "")]):
        ends = prev_p in "ES" or (prev_p in "BI" and p in "BSO") or (prev_p != "O" and prev_t != t)
        if ends and prev_p != "O":
            spans.append(TokenSpan(start, i, prev_t))
        begins = p in "BS" or (prev_p in "ESO" and p in "EI") or (p != "O" and prev_t != t)
        if begins and p != "O":
            start = i
        prev_p, prev_t = p, t
    return spans


# --------------------------------------------------------------------------- conversions


def decode_tags(tags: Sequence[str]) -> list[TokenSpan]:
    """The entities of one tag sequence, by the CoNLL rules.

    The rules are those of CoNLL's ``conlleval`` (Tjong Kim Sang & De Meulder 2003) as
    ``seqeval``'s default mode implements them (``seqeval.metrics.sequence_labeling.
    get_entities``): an entity starts at ``B-``/``S-``, at ``I-``/``E-`` after ``O``,
    ``E-`` or ``S-``, and at any change of type; it ends before ``B-``/``S-``/``O``, after
    ``E-``/``S-``, and at a change of type. So IOB1, IOB2 and BIOES are all read.

    Args:
        tags: one tag per token (``"O"``, ``"B-PER"`` …).

    Returns:
        The entities as token spans, in order (end exclusive).

    Raises:
        InvalidInputError: a tag that is not ``O`` nor ``B-``/``I-``/``E-``/``S-`` and a
            type (names its position).
    """
    if isinstance(tags, str):
        raise InvalidInputError("expected a sequence of tags, found a string")
    parsed: list[tuple[str, str]] = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise InvalidInputError(f"tag {i}: expected a string, found {type(tag).__name__}")
        try:
            parsed.append(_split_tag(tag))
        except ValueError as exc:
            raise InvalidInputError(f"tag {i}: {exc}") from None
    return _decode(parsed)


def encode_tags(n_tokens: int, spans: Iterable[TokenSpan], scheme: Scheme = "IOB2") -> list[str]:
    """Tags for token spans.

    Args:
        n_tokens: the number of tokens.
        spans: entities as token spans, non-overlapping.
        scheme: ``"IOB2"`` (``B-`` then ``I-``) or ``"BIOES"`` (``S-`` for a one-token
            entity, else ``B-``, ``I-`` …, ``E-``).

    Returns:
        ``n_tokens`` tags; ``O`` outside the entities. :func:`decode_tags` gives the
        spans back.

    Raises:
        InvalidInputError: a span out of ``[0, n_tokens]`` or empty, two spans that
            overlap, a bad label, an unknown scheme.
    """
    if scheme not in ("IOB2", "BIOES"):
        raise InvalidInputError(f"unknown tagging scheme {scheme!r}; use IOB2 or BIOES")
    tags = ["O"] * n_tokens
    previous: TokenSpan | None = None
    for span in sorted(spans):
        if not 0 <= span.start < span.end <= n_tokens:
            raise InvalidInputError(
                f"token span [{span.start}, {span.end}) {span.label!r} is not within "
                f"{n_tokens} tokens"
            )
        _check_label(span.label, f"token span [{span.start}, {span.end}): ")
        if previous is not None and span.start < previous.end:
            raise InvalidInputError(
                f"token spans [{previous.start}, {previous.end}) {previous.label!r} and "
                f"[{span.start}, {span.end}) {span.label!r} overlap; one tag per token "
                "cannot hold both"
            )
        previous = span
        if scheme == "BIOES" and span.end - span.start == 1:
            tags[span.start] = f"S-{span.label}"
            continue
        tags[span.start] = f"B-{span.label}"
        for i in range(span.start + 1, span.end):
            tags[i] = f"I-{span.label}"
        if scheme == "BIOES":
            tags[span.end - 1] = f"E-{span.label}"
    return tags


def whitespace_tokens(text: str) -> tuple[tuple[int, int], ...]:
    """Tokenise on whitespace (what :meth:`str.split` splits on).

    Returns:
        ``(start, end)`` character offsets of each maximal run of non-whitespace.
    """
    return tuple(m.span() for m in _TOKEN.finditer(text))


def align_spans(
    offsets: Sequence[tuple[int, int]],
    spans: Iterable[Span],
    alignment: Alignment = "strict",
    *,
    text: str | None = None,
) -> list[TokenSpan]:
    """Character spans to token spans.

    Args:
        offsets: ``(start, end)`` of each token, in order, disjoint.
        spans: entities as character spans.
        alignment: for a span whose ends are not token boundaries: ``"strict"`` refuses
            it, ``"expand"`` takes every token it overlaps, ``"contract"`` takes the tokens
            it covers whole and drops the span when there is none (as spaCy's
            ``Doc.char_span(alignment_mode=...)``).
        text: the text, to quote the span in messages.

    Returns:
        The token spans, in the order of ``spans`` (fewer with ``"contract"``).

    Raises:
        InvalidInputError: with ``"strict"``, a span that starts or ends inside a token
            or between tokens; a span that overlaps no token; an unknown ``alignment``.
    """
    if alignment not in ("strict", "expand", "contract"):
        raise InvalidInputError(f"unknown alignment {alignment!r}; use strict, expand or contract")
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    result: list[TokenSpan] = []
    for span in spans:
        # first token ending after span.start; last token starting before span.end
        first = bisect.bisect_right(ends, span.start)
        last = bisect.bisect_left(starts, span.end) - 1
        shown = f"span [{span.start}, {span.end}) {span.label!r}"
        if text is not None:
            shown += f" ({_quote(text[span.start : span.end])})"
        if first > last:
            raise InvalidInputError(f"{shown} overlaps no token")
        if alignment == "strict":
            if starts[first] != span.start or ends[last] != span.end:
                side = "start" if starts[first] != span.start else "end"
                raise InvalidInputError(
                    f"{shown} does not {side} at a token boundary (tokens are split on "
                    "whitespace unless given); use alignment='expand' or 'contract' to "
                    "adjust such spans"
                )
        elif alignment == "contract":
            if starts[first] < span.start:
                first += 1
            if ends[last] > span.end:
                last -= 1
            if first > last:
                continue
        result.append(TokenSpan(first, last + 1, span.label))
    return result


def char_spans(offsets: Sequence[tuple[int, int]], spans: Iterable[TokenSpan]) -> list[Span]:
    """Token spans to character spans.

    Args:
        offsets: ``(start, end)`` of each token.
        spans: token spans within ``offsets``.

    Returns:
        ``Span(offsets[s.start][0], offsets[s.end - 1][1], s.label)`` for each.

    Raises:
        InvalidInputError: a token span out of range or empty.
    """
    result: list[Span] = []
    for span in spans:
        if not 0 <= span.start < span.end <= len(offsets):
            raise InvalidInputError(
                f"token span [{span.start}, {span.end}) {span.label!r} is not within "
                f"{len(offsets)} tokens"
            )
        result.append(Span(offsets[span.start][0], offsets[span.end - 1][1], span.label))
    return result


def to_tags(
    example: Example,
    *,
    labels: Iterable[str] | None = None,
    scheme: Scheme = "IOB2",
    alignment: Alignment = "strict",
) -> tuple[list[str], list[str]]:
    """An example's tokens and one layer of tags.

    Args:
        example: the example; without token offsets, its text is split on whitespace.
        labels: keep only the spans of these types (one layer of an example whose spans
            overlap, e.g. ``{"Skill"}`` of SkillSpan); ``None`` keeps every span.
        scheme: ``"IOB2"`` or ``"BIOES"``.
        alignment: how spans that do not fall on token boundaries are aligned (see
            :func:`align_spans`).

    Returns:
        ``(tokens, tags)``, two lists of the same length.

    Raises:
        InvalidInputError: a span that does not align (``"strict"``), kept spans that
            overlap; the message names the example's source and line when known.
    """
    offsets = example.token_offsets or whitespace_tokens(example.text)
    keep = None if labels is None else set(labels)
    spans = [s for s in example.spans if keep is None or s.label in keep]
    try:
        token_spans = align_spans(offsets, spans, alignment, text=example.text)
        tags = encode_tags(len(offsets), token_spans, scheme)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{example._where()}{exc.detail}") from None
    return [example.text[s:e] for s, e in offsets], tags


def from_tags(
    tokens: Sequence[str],
    *layers: Sequence[str],
    source: str | None = None,
    line: int | None = None,
) -> Example:
    """An example from tokens and one or more layers of tags.

    Args:
        tokens: the tokens: non-empty, without whitespace.
        *layers: tag sequences, each as long as ``tokens``, decoded by
            :func:`decode_tags`; the spans of all layers are joined.
        source: file name, for messages.
        line: first line in ``source``, for messages.

    Returns:
        The example: ``text`` is the tokens joined by single spaces, with their offsets.

    Raises:
        InvalidInputError: an empty token or one holding whitespace, a layer of another
            length, a malformed tag.
    """
    if isinstance(tokens, str):
        raise InvalidInputError("expected a sequence of tokens, found a string")
    offsets: list[tuple[int, int]] = []
    position = 0
    for i, token in enumerate(tokens):
        if not isinstance(token, str) or not token:
            raise InvalidInputError(f"token {i}: expected a non-empty string, found {token!r}")
        if _WHITESPACE.search(token):
            raise InvalidInputError(f"token {i}: {_quote(token)} contains whitespace")
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    spans: set[Span] = set()
    for k, tags in enumerate(layers):
        if len(tags) != len(tokens):
            raise InvalidInputError(f"tag layer {k}: {len(tags)} tags for {len(tokens)} tokens")
        spans.update(char_spans(offsets, decode_tags(tags)))
    return Example(
        text=" ".join(tokens),
        spans=tuple(spans),
        token_offsets=tuple(offsets),
        source=source,
        line=line,
    )


# --------------------------------------------------------------------------- decoding input


def _prefix(source: str | None) -> str:
    return f"{source}: " if source else ""


def _decode_input(data: str | bytes, source: str | None) -> str:
    """Text of the input: UTF-8 (BOM skipped), without NUL or lone surrogates."""
    where = _prefix(source)
    if isinstance(data, bytes | bytearray | memoryview):
        text = decode_utf8(bytes(data), where)
    elif isinstance(data, str):
        text = data.removeprefix("\ufeff")
    else:
        raise InvalidInputError(f"{where}expected text (str) or bytes, found {type(data).__name__}")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataFormatError(f"{where}line {line}: NUL character (a binary file?)")
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        line = text.count("\n", 0, surrogate.start()) + 1
        raise DataFormatError(
            f"{where}line {line}: lone surrogate U+{ord(surrogate.group()):04X} (not valid "
            "Unicode text)"
        )
    return text


def _lines(text: str) -> list[str]:
    """Physical lines: only LF ends a line (a CR before it is dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(
            f"{Path(path).name}: cannot read file: {exc.strerror or exc}"
        ) from None


# --------------------------------------------------------------------------- CoNLL


def _fields_wanted(n_tags: int) -> str:
    return "a token and a tag" if n_tags == 1 else f"a token and {n_tags} tags"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def parse_conll(
    data: str | bytes,
    *,
    source: str | None = None,
    strict: bool = False,
    tag_columns: Sequence[int] | None = None,
    normalize: Callable[[str], str] | None = None,
) -> list[Example]:
    """Read CoNLL / IOB text (see the module docs for the layout and the tag rules).

    Args:
        data: the file's content, as bytes (UTF-8) or text.
        source: the file's name, put before each message.
        strict: accept strict IOB2 only (``B-X`` starts an entity, ``I-X`` continues one);
            by default IOB1, IOB2 and BIOES are decoded by the CoNLL rules.
        tag_columns: the fields holding tags, counted from 0 (the token is field 0), e.g.
            ``[3]`` for CoNLL-2003's ``token POS chunk NER``; ``None``: every field after
            the token.
        normalize: applied to each token before it is checked (e.g.
            :func:`aiweb.datasets.skillspan.normalize_token`).

    Returns:
        One :class:`Example` per sentence, in file order, with ``token_offsets``,
        ``source`` and ``line`` (the sentence's first line) set.

    Raises:
        DataFormatError: invalid UTF-8, a NUL character or lone surrogate; a line with
            another number of fields than the first (``"line 57: expected a token and a
            tag (as on line 1), found 3 fields"``); an empty token, or one holding whitespace; a
            malformed tag; with ``strict``, a tag that breaks IOB2 (``"line 12: I-PER
            follows O"``); no sentence at all. Each message names the line.
    """
    where = _prefix(source)
    text = _decode_input(data, source)
    if tag_columns is not None and (
        not tag_columns or any(type(c) is not int or c < 1 for c in tag_columns)
    ):
        raise InvalidInputError(
            "tag_columns must be field numbers >= 1 (the token is field 0), found "
            f"{list(tag_columns)}"
        )
    n_fields: int | None = None
    first_line = 0
    columns: list[int] = []
    examples: list[Example] = []
    tokens: list[str] = []
    layers: list[list[tuple[str, str]]] = []
    lines_of: list[int] = []

    def close() -> None:
        if not tokens:
            return
        offsets: list[tuple[int, int]] = []
        position = 0
        for token in tokens:
            offsets.append((position, position + len(token)))
            position += len(token) + 1
        spans: set[Span] = set()
        for layer in layers:
            spans.update(char_spans(offsets, _decode(layer)))
        examples.append(
            Example(
                text=" ".join(tokens),
                spans=tuple(spans),
                token_offsets=tuple(offsets),
                source=source,
                line=lines_of[0],
            )
        )
        tokens.clear()
        lines_of.clear()
        for layer in layers:
            layer.clear()

    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            close()
            continue
        # a TAB-separated line is cut at TABs only; any other at runs of whitespace
        tabbed = "\t" in line
        fields = [f.strip() for f in line.rstrip().split("\t")] if tabbed else line.split()
        at = f"{where}line {number}: "
        if fields[0] == _DOCSTART:
            close()
            continue
        if n_fields is None:
            if len(fields) < 2:
                raise DataFormatError(
                    f"{at}expected a token and a tag, found {_plural(len(fields), 'field')}"
                )
            n_fields, first_line = len(fields), number
            columns = list(range(1, n_fields)) if tag_columns is None else list(tag_columns)
            if max(columns) >= n_fields:
                raise DataFormatError(
                    f"{at}tag column {max(columns)} is missing: the line has "
                    f"{_plural(n_fields, 'field')} (the token is field 0)"
                )
            layers = [[] for _ in columns]
        if len(fields) != n_fields:
            wanted = (
                _fields_wanted(n_fields - 1) if tag_columns is None else _plural(n_fields, "field")
            )
            raise DataFormatError(
                f"{at}expected {wanted} (as on line {first_line}), found "
                f"{_plural(len(fields), 'field')}"
            )
        token = normalize(fields[0]) if normalize is not None else fields[0]
        if not token:
            raise DataFormatError(f"{at}empty token")
        if _WHITESPACE.search(token):
            raise DataFormatError(
                f"{at}token {_quote(token)} contains whitespace (one token per line)"
            )
        for layer, column in zip(layers, columns, strict=True):
            tag = fields[column]
            if not tag:
                raise DataFormatError(f"{at}field {column} (a tag) is empty")
            try:
                prefix, type_ = _split_tag(tag)
            except ValueError as exc:
                raise DataFormatError(f"{at}{exc}") from None
            if strict:
                _check_iob2(prefix, type_, tag, layer[-1] if layer else None, at)
            layer.append((prefix, type_))
        tokens.append(token)
        lines_of.append(number)
    close()
    if not examples:
        raise DataFormatError(f"{where}no sentences (the input is empty)")
    return examples


def _check_iob2(
    prefix: str, type_: str, tag: str, previous: tuple[str, str] | None, at: str
) -> None:
    if prefix in "ES":
        raise DataFormatError(f"{at}{tag} is not an IOB2 tag (strict IOB2: B-, I- and O only)")
    if prefix == "I" and (previous is None or previous[0] == "O" or previous[1] != type_):
        before = (
            "the start of the sentence"
            if previous is None
            else "O"
            if previous[0] == "O"
            else f"{previous[0]}-{previous[1]}"
        )
        raise DataFormatError(
            f"{at}{tag} follows {before} (strict IOB2: an entity starts with B-{type_})"
        )


def read_conll(
    path: Path,
    *,
    strict: bool = False,
    tag_columns: Sequence[int] | None = None,
    normalize: Callable[[str], str] | None = None,
) -> list[Example]:
    """Read a CoNLL / IOB file: :func:`parse_conll` on its bytes, named by its file name.

    Args:
        path: the file.
        strict: accept strict IOB2 only (see :func:`parse_conll`).
        tag_columns: the fields holding tags (see :func:`parse_conll`).
        normalize: applied to each token before it is checked.

    Returns:
        One :class:`Example` per sentence (see :func:`parse_conll`).

    Raises:
        DataFormatError: the file cannot be read, or is malformed (see :func:`parse_conll`).
    """
    return parse_conll(
        _read_bytes(path),
        source=Path(path).name,
        strict=strict,
        tag_columns=tag_columns,
        normalize=normalize,
    )


# --------------------------------------------------------------------------- JSONL


def _json_span(text: str, item: object, k: int, at: str) -> Span:
    here = f"{at}span {k}: "
    if not isinstance(item, dict):
        raise DataFormatError(
            f'{here}expected an object {{"start", "end", "label"}}, found {type(item).__name__}'
        )
    missing = [key for key in ("start", "end", "label") if key not in item]
    if missing:
        raise DataFormatError(f"{here}missing {', '.join(missing)}")
    start, end, label = item["start"], item["end"], item["label"]
    for name, value in (("start", start), ("end", end)):
        if type(value) is not int:
            raise DataFormatError(f"{here}{name} must be an integer, found {value!r}")
    try:
        _check_label(label, here)
        span = Span(start, end, label)
        _check_span(text, span, here)
    except InvalidInputError as exc:
        raise DataFormatError(exc.detail) from None
    if "text" in item and item["text"] != text[start:end]:
        raise DataFormatError(
            f"{here}its text {_quote(str(item['text']))} differs from text[{start}:{end}] "
            f"{_quote(text[start:end])} (offsets must count characters, not bytes or "
            "UTF-16 units)"
        )
    return span


def parse_jsonl(
    data: str | bytes, *, source: str | None = None, allow_overlaps: bool = False
) -> list[Example]:
    """Read JSONL: one ``{"text": "…", "spans": [{"start", "end", "label"}, …]}`` a line.

    Args:
        data: the file's content, as bytes (UTF-8) or text.
        source: the file's name, put before each message.
        allow_overlaps: keep spans that overlap (a span layer per label); by default two
            overlapping spans are refused, as one IOB tag per token cannot hold both.

    Returns:
        One :class:`Example` per non-blank line, in order, without token offsets
        (``token_offsets`` is ``None``), with ``source`` and ``line`` set.

    Raises:
        DataFormatError: invalid UTF-8, a NUL character or lone surrogate (also as a JSON
            ``\\u`` escape); a line that is not a JSON object; ``text`` missing, not a
            string or blank; ``spans`` missing or not a list; a span that is not an
            object, lacks ``start``/``end``/``label``, has non-integer offsets, is out of
            range (``end`` beyond the text), has ``start >= end``, covers only
            whitespace, has an empty label or one holding whitespace, or whose ``text``
            differs from the slice; a span given twice; overlapping spans (unless
            ``allow_overlaps``); no example at all. Each message names the line.
    """
    where = _prefix(source)
    text = _decode_input(data, source)
    examples: list[Example] = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        at = f"{where}line {number}: "
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{at}not valid JSON ({exc.msg} at column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise DataFormatError(f"{at}not valid JSON ({reason[:200]})") from None
        if not isinstance(row, dict):
            raise DataFormatError(
                f'{at}expected a JSON object {{"text", "spans"}}, found {type(row).__name__}'
            )
        if "text" not in row:
            raise DataFormatError(f'{at}missing "text"')
        value = row["text"]
        if not isinstance(value, str):
            raise DataFormatError(f'{at}"text" must be a string, found {type(value).__name__}')
        if not value.strip():
            raise DataFormatError(f'{at}"text" is empty')
        _check_unicode(value, at)
        if "spans" not in row:
            raise DataFormatError(f'{at}missing "spans" (use [] for a text without entities)')
        items = row["spans"]
        if not isinstance(items, list):
            raise DataFormatError(f'{at}"spans" must be a list, found {type(items).__name__}')
        spans = [_json_span(value, item, k, at) for k, item in enumerate(items, start=1)]
        for label in {s.label for s in spans}:
            _check_unicode(label, at)
        ordered = sorted(spans)
        for a, b in itertools.pairwise(ordered):
            if a == b:
                raise DataFormatError(f"{at}span [{a.start}, {a.end}) {a.label!r} is given twice")
            if not allow_overlaps and b.start < a.end:
                raise DataFormatError(
                    f"{at}spans [{a.start}, {a.end}) {a.label!r} and [{b.start}, {b.end}) "
                    f"{b.label!r} overlap (one tag per token cannot hold both; pass "
                    "allow_overlaps=True to keep them)"
                )
        examples.append(Example(text=value, spans=tuple(spans), source=source, line=number))
    if not examples:
        raise DataFormatError(f"{where}no examples (the input is empty)")
    return examples


def _check_unicode(value: str, at: str) -> None:
    if "\x00" in value:
        raise DataFormatError(f"{at}NUL character in a string")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        raise DataFormatError(
            f"{at}lone surrogate U+{ord(surrogate.group()):04X} in a string (not valid "
            "Unicode text)"
        )


def read_jsonl(path: Path, *, allow_overlaps: bool = False) -> list[Example]:
    """Read a JSONL file: :func:`parse_jsonl` on its bytes, named by its file name.

    Raises:
        DataFormatError: the file cannot be read, or is malformed (see :func:`parse_jsonl`).
    """
    return parse_jsonl(_read_bytes(path), source=Path(path).name, allow_overlaps=allow_overlaps)


# --------------------------------------------------------------------------- any file


def sniff_format(data: bytes) -> Literal["jsonl", "conll"]:
    """``"jsonl"`` when the first non-blank line of ``data`` starts with ``{`` (after a
    UTF-8 BOM and spaces), else ``"conll"``: the content decides, never the file name."""
    for raw in data.removeprefix(b"\xef\xbb\xbf").splitlines():
        line = raw.strip()
        if line:
            return "jsonl" if line.startswith(b"{") else "conll"
    return "conll"


def read_examples(path: Path, *, allow_overlaps: bool = True) -> list[Example]:
    """Read annotated examples from a CoNLL/IOB or JSONL file, the format sniffed from
    its content (:func:`sniff_format`).

    Args:
        path: the file.
        allow_overlaps: JSONL spans may overlap (as CoNLL tag layers may).

    Returns:
        Its examples, in file order.

    Raises:
        DataFormatError: unreadable, malformed (naming the line), or no example at all.
    """
    data = _read_bytes(path)
    name = Path(path).name
    if sniff_format(data) == "jsonl":
        examples = parse_jsonl(data, source=name, allow_overlaps=allow_overlaps)
    else:
        examples = parse_conll(data, source=name)
    if not examples:
        raise DataFormatError(f"{name}: no examples (an empty file?)")
    return examples


def file_splits(
    path: Path,
    *,
    eval_path: Path | None = None,
    test_size: float = 0.2,
    seed: int = 0,
) -> EntitySplits:
    """The splits of a user's file: ``train`` from ``path`` and ``test`` from
    ``eval_path``, or, without one, a seeded random ``test_size`` share of ``path``'s
    examples held out (at least one; the rest train).

    Raises:
        DataFormatError: see :func:`read_examples`.
        InvalidInputError: fewer than 2 examples to split, or none annotated for training.
    """
    train = read_examples(path)
    name = Path(path).name
    if eval_path is not None:
        test = read_examples(eval_path)
    else:
        if len(train) < 2:
            raise InvalidInputError(
                f"{name}: {len(train)} example; at least 2 are needed to hold one out for "
                "evaluation (or give an evaluation file)"
            )
        order = np.random.default_rng(seed).permutation(len(train))
        n_test = min(len(train) - 1, max(1, round(test_size * len(train))))
        held = set(order[:n_test].tolist())
        test = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
    if not any(e.spans for e in train):
        raise InvalidInputError(f"{name}: no entity in the training examples; nothing to learn")
    splits = {"train": train, "test": test}
    labels = sorted({s.label for examples in splits.values() for e in examples for s in e.spans})
    return EntitySplits(name=name, splits=splits, labels=tuple(labels))


# --------------------------------------------------------------------------- datasets

#: dataset name -> (split -> files, token normaliser)
_LAYOUTS: dict[str, tuple[dict[str, tuple[str, ...]], Callable[[str], str] | None]] = {
    wnut17.NAME: (wnut17.SPLITS, None),
    skillspan.NAME: (skillspan.SPLITS, skillspan.normalize_token),
    job_description_entities.NAME: (job_description_entities.SPLITS, None),
}


def _layout(name: str) -> tuple[dict[str, tuple[str, ...]], Callable[[str], str] | None]:
    layout = _LAYOUTS.get(name)
    if layout is None:
        catalog.info(name)  # DatasetNotFound for an unknown name, listing the known ones
        raise InvalidInputError(
            f"{name!r} is a {catalog.info(name).task} dataset, not a {TASK} one; those are: "
            f"{', '.join(sorted(_LAYOUTS))}"
        )
    return layout


def load_directory(name: str, directory: Path) -> EntitySplits:
    """Parse a built-in token-classification dataset from its directory.

    Args:
        name: ``"wnut17"``, ``"skillspan"`` or ``"job_description_entities"``.
        directory: the folder holding its files, laid out as ``shared/data/<name>/``.

    Returns:
        Its splits (files of one split concatenated in the dataset's order).

    Raises:
        DatasetNotFound: ``name`` is not a built-in token-classification dataset.
        DataFormatError: a file is missing or malformed (names the file and line).
    """
    files, normalize = _layout(name)
    splits: dict[str, list[Example]] = {}
    for split, names in files.items():
        splits[split] = [
            example
            for file_name in names
            for example in read_conll(directory / file_name, normalize=normalize)
        ]
    labels = sorted({s.label for examples in splits.values() for e in examples for s in e.spans})
    return EntitySplits(name=name, splits=splits, labels=tuple(labels))


def load_dataset(
    name: str, settings: Settings, *, url: str | None = None, progress: bool = True
) -> EntitySplits:
    """Locate (downloading if needed) and read a built-in token-classification dataset.

    Looks in ``AIWEB_DATA_HOME/<name>/``, then the cache, then downloads the publisher's
    files (pinned to a commit, checked against their sha256): see
    :func:`aiweb.datasets.catalog.locate`.

    Args:
        name: ``"wnut17"`` (train/dev/test), ``"skillspan"`` (train/dev/test, house +
            tech) or ``"job_description_entities"`` (test only).
        settings: supplies ``data_home`` and ``datasets_cache_dir``.
        url: base URL to download from instead of the publisher's (mirrors, tests).
        progress: show a download progress bar on stderr.

    Returns:
        The dataset's :class:`EntitySplits`.

    Raises:
        DatasetNotFound: unknown dataset name.
        InvalidInputError: a built-in dataset of another task (``sst2``).
        DatasetUnavailableError: not on disk and the download failed (says how to
            proceed offline).
        DataFormatError: a file is malformed (names the file and line).
    """
    _layout(name)  # an unknown name, or a dataset of another task, fails before any I/O
    directory = catalog.locate(name, settings, url=url, progress=progress)
    return load_directory(name, directory)


# --------------------------------------------------------------------------- cross-domain


@dataclass(frozen=True)
class CrossDomain:
    """A built-in test set from another domain that a model trained on a built-in dataset
    is also scored on (:data:`CROSS_DOMAIN`).

    Attributes:
        dataset: the other set's name (its ``test`` split is scored).
        label: its entity type that is scored; its other types are left out.
        predicted: the model's types read as ``label`` (the other corpus's guidelines may
            fold several of the training corpus's types into one).
    """

    dataset: str
    label: str
    predicted: tuple[str, ...]


#: training dataset -> the cross-domain set its models are scored on: SkillSpan's skill
#: and knowledge spans against the ``Skill`` spans of Green et al.'s job-description
#: corpus, whose guidelines count knowledge ("accounting", "Selenium") as skills
CROSS_DOMAIN: dict[str, CrossDomain] = {
    skillspan.NAME: CrossDomain(
        job_description_entities.NAME, "Skill", predicted=("Skill", "Knowledge")
    ),
}


def load_cross_domain(name: str, settings: Settings) -> tuple[CrossDomain, list[Example]] | None:
    """The cross-domain test set of built-in dataset ``name``, when it has one and it is
    on disk (or downloadable).

    Returns:
        ``(spec, test examples)``, or ``None``: ``name`` has no cross-domain set, or the
        set is unavailable (it is an extra figure; training goes on without it).

    Raises:
        DataFormatError: the set's file is malformed.
    """
    spec = CROSS_DOMAIN.get(name)
    if spec is None:
        return None
    try:
        data = load_dataset(spec.dataset, settings, progress=False)
    except DatasetUnavailableError:
        return None
    return spec, list(data.splits.get("test") or [])
