"""The token-classification datasets (wnut17, skillspan, job_description_entities): their
catalogue entries, and loading the real shared files (AIWEB_DATA_HOME) with the sentence,
token and entity counts their SOURCE.md files give."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from aiweb import datasets
from aiweb.config import Settings
from aiweb.datasets import job_description_entities, skillspan, wnut17
from aiweb.entities.data import EntitySplits, Example, load_dataset, load_directory, to_tags
from aiweb.errors import DataFormatError, DatasetNotFound, InvalidInputError
from conftest import data_home

NER = ("job_description_entities", "skillspan", "wnut17")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = data_home()
    if home is None or not all((home / name).is_dir() for name in NER):
        pytest.skip("AIWEB_DATA_HOME with the shared datasets is not set")
    return Settings(home=tmp_path_factory.mktemp("home"), data_home=home)


def counts(examples: list[Example]) -> tuple[int, int, dict[str, int]]:
    """(sentences, tokens, entities per type)."""
    tokens = sum(len(e.token_offsets or ()) for e in examples)
    per_type = Counter(span.label for e in examples for span in e.spans)
    return len(examples), tokens, dict(sorted(per_type.items()))


# --------------------------------------------------------------------------- catalogue


def test_catalogue_entries() -> None:
    for name, module in (
        ("wnut17", wnut17),
        ("skillspan", skillspan),
        ("job_description_entities", job_description_entities),
    ):
        info = datasets.info(name)
        assert info.task == "token-classification"
        assert info.directory == name
        assert info.labels == module.LABELS
        assert "raw.githubusercontent.com" in info.url  # a base URL pinned to a commit
        assert module.SPEC.downloads
        assert set(module.SPEC.sha256) == set(module.FILES)
        assert {f for files in module.SPLITS.values() for f in files} == set(module.FILES)
    assert list(skillspan.SPLITS) == ["train", "dev", "test"]
    assert list(job_description_entities.SPLITS) == ["test"]


def test_text_classification_loader_refuses_them(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, data_home=tmp_path)
    for name in NER:
        directory = tmp_path / name
        directory.mkdir()
        for file_name in datasets.catalog._spec(name).files:
            (directory / file_name).write_text("a\tO\n")
        # it names the task that reads it and where its files are, not a task's module
        with pytest.raises(
            DataFormatError, match=r"is a token-classification dataset, not labeled texts: .*locate"
        ):
            datasets.load(name, settings, progress=False)


def test_load_dataset_refuses_other_tasks_and_unknown_names(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, data_home=None)
    with pytest.raises(InvalidInputError, match="'sst2' is a text-classification dataset"):
        load_dataset("sst2", settings, progress=False)
    with pytest.raises(DatasetNotFound, match=r"known datasets: .*wnut17"):
        load_dataset("conll2003", settings, progress=False)


def test_load_directory_on_hand_made_files(tmp_path: Path) -> None:
    (tmp_path / "skillspan_house_train.conll").write_text(
        "We\x92re\tO\tO\nusing\tB-Skill\tO\nPython\tI-Skill\tB-Knowledge\n\n\n"
    )
    (tmp_path / "skillspan_tech_train.conll").write_text("  SQL\tO\tB-Knowledge\n")
    for split in ("dev", "test"):
        for source in ("house", "tech"):
            (tmp_path / f"skillspan_{source}_{split}.conll").write_text("x\tO\tO\n")
    data = load_directory("skillspan", tmp_path)
    assert list(data.splits) == ["train", "dev", "test"]
    assert data.train is not None
    assert [e.text for e in data.train] == ["We\u2019re using Python", "SQL"]
    assert data.train[0].entities() == [("using Python", "Skill"), ("Python", "Knowledge")]
    assert data.labels == ("Knowledge", "Skill")
    (tmp_path / "skillspan_tech_test.conll").write_text("x\tO\nz\tB-Skill\tO\n")
    with pytest.raises(DataFormatError, match=r"skillspan_tech_test\.conll: line 2: expected"):
        load_directory("skillspan", tmp_path)


# --------------------------------------------------------------------------- the real files


@pytest.fixture(scope="module")
def wnut(shared: Settings) -> EntitySplits:
    assert datasets.locate("wnut17", shared, progress=False) == shared.data_home / "wnut17"  # type: ignore[operator]
    return load_dataset("wnut17", shared, progress=False)


@pytest.fixture(scope="module")
def skills(shared: Settings) -> EntitySplits:
    return load_dataset("skillspan", shared, progress=False)


#: SOURCE.md: sentences / tokens per file, and the B- counts per type
WNUT17_COUNTS = {
    "train": (3394, 62730, {"corporation": 221, "creative-work": 140, "group": 264,
                            "location": 548, "person": 660, "product": 142}),
    "dev": (1009, 15733, {"corporation": 34, "creative-work": 105, "group": 39,
                          "location": 74, "person": 470, "product": 114}),
    "test": (1287, 23394, {"corporation": 66, "creative-work": 142, "group": 165,
                           "location": 150, "person": 429, "product": 127}),
}  # fmt: skip


def test_wnut17_counts_match_source_md(wnut: EntitySplits) -> None:
    assert list(wnut.splits) == ["train", "dev", "test"]
    assert wnut.labels == wnut17.LABELS
    for split, expected in WNUT17_COUNTS.items():
        assert counts(wnut.splits[split]) == expected, split


def test_wnut17_examples_are_consistent(wnut: EntitySplits) -> None:
    first = wnut.splits["train"][0]
    assert first.text.startswith("@paulwalk It 's the view from where I 'm living")
    assert first.entities() == [("Empire State Building", "location"), ("ESB", "location")]
    assert (first.source, first.line) == ("wnut17train.conll", 1)
    for examples in wnut.splits.values():
        for example in examples:
            assert example.tokens() == example.text.split(" ")
            for span in example.spans:
                piece = example.text[span.start : span.end]
                assert piece
                assert piece == piece.strip()
            tokens, tags = to_tags(example)  # every span falls on token boundaries
            assert len(tokens) == len(tags)


def test_skillspan_counts_match_source_md(skills: EntitySplits) -> None:
    assert skills.labels == ("Knowledge", "Skill")
    # SOURCE.md per file (house + tech): sentences, tokens, B-Skill / B-Knowledge
    assert counts(skills.splits["train"]) == (
        1668 + 3133,
        36986 + 56485,
        {"Knowledge": 781 + 2188, "Skill": 984 + 1237},
    )
    assert counts(skills.splits["dev"]) == (
        1019 + 2156,
        19172 + 20901,
        {"Knowledge": 287 + 806, "Skill": 525 + 545},
    )
    # + 1 Skill: one I-Skill follows O in skillspan_tech_test.conll (the CoNLL rules read
    # it as the start of an entity; SOURCE.md counts B- tags)
    assert counts(skills.splits["test"]) == (
        1221 + 2349,
        21923 + 20885,
        {"Knowledge": 345 + 829, "Skill": 634 + 456 + 1},
    )
    # the house file comes first, then tech
    assert skills.splits["train"][0].source == "skillspan_house_train.conll"
    assert skills.splits["train"][-1].source == "skillspan_tech_train.conll"


def test_skillspan_text_is_normalised_and_layers_overlap(skills: EntitySplits) -> None:
    everything = [e for examples in skills.splits.values() for e in examples]
    assert everything[0].text.startswith("We\u2019re changing the way people enjoy wine")
    assert not any(
        0x80 <= ord(c) < 0xA0 for e in everything for c in e.text if c not in "\x81\x8d\x8f\x90\x9d"
    )
    overlapping = sum(
        1
        for e in everything
        for a in e.spans
        for b in e.spans
        if a.label == "Skill" and b.label == "Knowledge" and a.start < b.end and b.start < a.end
    )
    assert overlapping == 231
    for example in everything:  # each layer alone is one IOB sequence
        for label in ("Skill", "Knowledge"):
            to_tags(example, labels={label})


def test_job_description_entities_counts_match_source_md(shared: Settings) -> None:
    data = load_dataset("job_description_entities", shared, progress=False)
    assert list(data.splits) == ["test"]
    assert data.train is None
    assert data.dev is None
    assert data.test is not None
    assert counts(data.test) == (
        336,
        8050,
        {"Domain": 60, "Experience": 9, "Occupation": 137, "Qualification": 26, "Skill": 676},
    )
    assert data.labels == job_description_entities.LABELS


def test_shared_files_match_the_recorded_sha256(shared: Settings) -> None:
    for name, module in (
        ("wnut17", wnut17),
        ("skillspan", skillspan),
        ("job_description_entities", job_description_entities),
    ):
        directory = datasets.locate(name, shared, progress=False)
        for file_name, digest in module.SHA256.items():
            assert hashlib.sha256((directory / file_name).read_bytes()).hexdigest() == digest


def test_fingerprint_is_stable(wnut: EntitySplits, shared: Settings) -> None:
    again = load_dataset("wnut17", shared, progress=False)
    assert again.sha256() == wnut.sha256()
    assert again == wnut
