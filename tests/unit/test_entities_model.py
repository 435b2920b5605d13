"""aiweb.entities.model / crf / training on a small synthetic dataset (trains in seconds):
the toy pattern is learnt, offsets always slice the input, serialisation round-trips and
refuses garbage, training is deterministic and can be stopped, the CRF baseline learns
the pattern too."""

from __future__ import annotations

import json
import random
import struct

import pytest

from aiweb.entities.crf import fit_crf, regex_tokens
from aiweb.entities.data import Example, Span, from_tags, whitespace_tokens
from aiweb.entities.model import Entity, EntityModel, fit, without_overlaps
from aiweb.entities.training import evaluate_model, train_and_evaluate
from aiweb.errors import InvalidInputError, UnsafeArtifactError
from aiweb.jobs.entities import JobCancelled

NAMES = ["Alice", "Bob", "Carol", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal"]
CITIES = ["Paris", "Lagos", "Osaka", "Quito", "Berlin", "Lima", "Oslo", "Cairo", "Hanoi", "Perth"]
FILLERS = ["yesterday", "today", "again", "early", "late", "twice"]


def sentence(rng: random.Random, name: str, city: str) -> Example:
    """``<filler> <name> flew to <city> <filler>`` (tokens and IOB2 tags)."""
    shape = rng.randrange(3)
    if shape == 0:
        words = ["so", name, "flew", "to", city, rng.choice(FILLERS)]
        tags = ["O", "B-person", "O", "O", "B-location", "O"]
    elif shape == 1:
        words = ["we", "met", name, "in", city, rng.choice(FILLERS), "."]
        tags = ["O", "O", "B-person", "O", "B-location", "O", "O"]
    else:
        words = [rng.choice(FILLERS), "nothing", "happened", "here", "."]
        tags = ["O"] * 5
    return from_tags(words, tags)


def dataset(seed: int, n: int, names: list[str], cities: list[str]) -> list[Example]:
    rng = random.Random(seed)
    return [sentence(rng, rng.choice(names), rng.choice(cities)) for _ in range(n)]


TRAIN = dataset(0, 240, NAMES[:8], CITIES[:8])
DEV = dataset(1, 40, NAMES[:8], CITIES[:8])
TEST = dataset(2, 60, NAMES[:8], CITIES[:8])


@pytest.fixture(scope="module")
def model() -> EntityModel:
    return fit(TRAIN, dev=DEV, epochs=12, seed=0, patience=4)


def check_offsets(texts: list[str], predicted: list[list[Entity]]) -> int:
    assert len(predicted) == len(texts)
    count = 0
    for text, entities in zip(texts, predicted, strict=True):
        for entity in entities:
            assert 0 <= entity.start < entity.end <= len(text)
            assert text[entity.start : entity.end] == entity.text
            assert entity.text.strip() == entity.text
            assert 0.0 <= entity.score <= 1.0
            count += 1
    return count


# --------------------------------------------------------------------------- learning


def test_the_model_learns_the_toy_pattern(model: EntityModel) -> None:
    assert model.labels == ("location", "person")
    report = evaluate_model(model, TEST)
    assert report.micro.f1 >= 0.9, report.to_dict()
    [found] = model.extract(["we met Bob in Lima again ."])
    assert [(e.text, e.label, e.start, e.end) for e in found] == [
        ("Bob", "person", 7, 10),
        ("Lima", "location", 14, 18),
    ]
    assert model.info["pipeline"] == ["ner", "span_ruler"]
    assert model.info["patterns"] > 0
    assert model.info["best_epoch"] >= 1


def test_empty_and_blank_texts_give_no_entities(model: EntityModel) -> None:
    assert model.extract(["", "   ", "so Carol flew to Osaka today"])[:2] == [[], []]
    assert model.extract([]) == []


def test_inputs_must_be_a_list_of_strings(model: EntityModel) -> None:
    with pytest.raises(InvalidInputError, match="list of strings"):
        model.extract("so Bob flew to Lima")
    with pytest.raises(InvalidInputError, match="text 1"):
        model.extract(["ok", 3])  # type: ignore[list-item]


ODD = [
    "we met Bob in Lima 😀 again .",
    "😀😀 so Alice flew to Paris 🇫🇷 today",
    "we  met   Carol\tin\t\tOsaka\n\nagain .",
    "\n\t so Grace flew to Berlin\r\n",
    "we met \uff28\uff49\uff52\uff4f in \uff2f\uff53\uff41\uff4b\uff41",  # fullwidth letters
    "we met Ine\u0301s in Quito\u200d today",  # combining accent, zero-width joiner
    "\u05e9\u05dc\u05d5\u05dd we met Farid in Cairo \u2066x\u2069",  # right-to-left text, isolates
    "\u00a0so\u2003Elena flew to Lima\u3000today",  # no-break, em and ideographic spaces
    # astral-plane letters
    "\U0001d518\U0001d52b\U0001d526\U0001d520 we met Dmitri in Hanoi \U0001d54f",
    " ",
]


def test_offsets_slice_the_input_whatever_the_text(model: EntityModel) -> None:
    predicted = model.extract(ODD)
    assert check_offsets(ODD, predicted) >= 6
    carol = ODD[2].index("Carol")
    assert ("Carol", carol, carol + 5) in [(e.text, e.start, e.end) for e in predicted[2]]
    berlin = ODD[3].index("Berlin")
    assert ("Berlin", "location", berlin, berlin + 6) in [
        (e.text, e.label, e.start, e.end) for e in predicted[3]
    ]


def test_offsets_slice_the_input_on_given_tokens(model: EntityModel) -> None:
    examples = [Example(text, token_offsets=whitespace_tokens(text)) for text in ODD]
    examples.append(Example("so Bob flew to Lima", token_offsets=((0, 2), (3, 6), (15, 19))))
    predicted = model.extract_examples(examples)
    assert check_offsets([e.text for e in examples], predicted) >= 6
    assert ("Lima", 15, 19) in [(e.text, e.start, e.end) for e in predicted[-1]]


def test_training_reads_overlapping_and_misaligned_spans() -> None:
    text = "we met Bob in Lima today"
    overlapping = Example(
        text, spans=(Span(7, 10, "person"), Span(7, 18, "group"), Span(14, 18, "location"))
    )
    assert without_overlaps(overlapping.spans) == [Span(7, 18, "group")]
    inside = Example("we met Bob-Lima today", spans=(Span(7, 10, "person"),))  # no tokens
    model = fit([overlapping, inside, *TRAIN[:20]], epochs=1, patterns=False)
    assert model.info["overlaps_dropped"] == 2
    assert "group" in model.labels


# --------------------------------------------------------------------------- serialisation


def test_to_bytes_round_trips_with_identical_predictions(model: EntityModel) -> None:
    data = model.to_bytes()
    assert b"\x80\x04" not in data[:64]  # no pickle protocol header up front
    loaded = EntityModel.from_bytes(data)
    assert loaded.labels == model.labels
    assert loaded.info == model.info
    texts = [e.text for e in TEST] + ODD
    assert loaded.extract(texts) == model.extract(texts)
    assert loaded.extract_examples(TEST) == model.extract_examples(TEST)


def test_garbage_bytes_are_a_clear_error(model: EntityModel) -> None:
    data = model.to_bytes()
    magic = b"AIWEB-ENTITIES\x00"
    size = struct.unpack(">I", data[len(magic) : len(magic) + 4])[0]
    header = json.loads(data[len(magic) + 4 : len(magic) + 4 + size])
    weights = data[len(magic) + 4 + size :]

    def artifact(head: dict[str, object], tail: bytes = weights) -> bytes:
        raw = json.dumps(head).encode()
        return magic + struct.pack(">I", len(raw)) + raw + tail

    cases = {
        b"": "no aiweb-entities header",
        b"\x80\x04\x95garbage": "no aiweb-entities header",
        magic + b"\x00": "truncated",
        magic + struct.pack(">I", 999) + b"{}": "truncated",
        magic + struct.pack(">I", 3) + b"{x}": "malformed header",
        artifact({**header, "format": "pickle"}): "malformed header",
        artifact(header, weights[: len(weights) // 2]): "could not be loaded",
        artifact(header, b"\x00" * 40): "could not be loaded",
        artifact(
            {**header, "config": header["config"].replace('factory = "ner"', 'factory = "x"')}
        ): "holds component 'ner'",
    }
    for data_case, message in cases.items():
        with pytest.raises(UnsafeArtifactError, match=message):
            EntityModel.from_bytes(data_case)


# --------------------------------------------------------------------------- training


def test_training_is_deterministic_given_the_seed() -> None:
    first = fit(TRAIN[:120], epochs=3, seed=7, patterns=False)
    second = fit(TRAIN[:120], epochs=3, seed=7, patterns=False)
    texts = [e.text for e in TEST] + ODD
    assert first.extract(texts) == second.extract(texts)
    assert first.nlp_.to_bytes() == second.nlp_.to_bytes()


def test_should_stop_cancels_and_progress_is_reported() -> None:
    calls = {"n": 0}

    def stop_after_five() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(JobCancelled):
        fit(TRAIN, epochs=50, should_stop=stop_after_five)
    assert calls["n"] == 6

    seen: list[tuple[float, str]] = []
    fit(TRAIN[:60], dev=DEV[:10], epochs=2, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert seen[-1] == (1.0, "done")
    assert any("dev F1" in m for _, m in seen)


def test_training_needs_entities() -> None:
    with pytest.raises(InvalidInputError, match="no training example has an entity"):
        fit([Example("nothing here")])
    with pytest.raises(InvalidInputError, match="epochs"):
        fit(TRAIN, epochs=0)


# --------------------------------------------------------------------------- the baseline


def test_the_crf_baseline_learns_the_toy_pattern() -> None:
    crf = fit_crf(TRAIN, max_iterations=50)
    assert crf.labels == ("location", "person")
    assert evaluate_model(crf, TEST).micro.f1 >= 0.9
    texts = ["we met Bob in Lima again .", "", *ODD]
    predicted = crf.extract(texts)
    check_offsets(texts, predicted)
    assert [(e.text, e.label) for e in predicted[0]] == [("Bob", "person"), ("Lima", "location")]
    assert predicted[1] == []
    assert crf.extract([TEST[0]]) == crf.extract_examples([TEST[0]])


def test_regex_tokens_keep_mentions_hashtags_and_urls() -> None:
    text = "@bob: see https://x.io/a?b=1 #NYC, isn't it?"
    assert [text[s:e] for s, e in regex_tokens(text)] == [
        "@bob",
        ":",
        "see",
        "https://x.io/a?b=1",
        "#NYC",
        ",",
        "isn't",
        "it",
        "?",
    ]


def test_train_and_evaluate_reports_model_and_baseline() -> None:
    outcome = train_and_evaluate((TRAIN, DEV, TEST), seed=0, epochs=6)
    assert outcome.evaluated_on == "test"
    assert outcome.report.micro.f1 >= 0.9
    assert outcome.baseline is not None
    assert outcome.baseline.micro.f1 >= 0.9
    assert outcome.train_seconds > 0
    assert (outcome.baseline_seconds or 0) > 0
    summary = json.loads(json.dumps(outcome.summary))
    assert summary["model"]["micro_f1"] == outcome.report.micro.f1
    assert summary["baseline"]["name"] == "crf"
    assert summary["examples"] == {"train": 240, "dev": 40, "test": 60}
    assert set(summary["model"]["report"]["per_type"]) == {"location", "person"}
    with pytest.raises(InvalidInputError, match="no training split"):
        train_and_evaluate(([], DEV, TEST))
