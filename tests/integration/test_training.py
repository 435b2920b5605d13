"""Training on real data (SST-2, SMS Spam) into a real registry: report, lineage,
skip-if-same and no leakage between training and evaluation rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import open_registry

from aiweb import __version__ as aiweb_version
from aiweb import datasets
from aiweb.classification.trainer import TrainParams, split_train_test
from aiweb.classification.training import TrainingData, train_text_classification
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits, LabeledTexts
from aiweb.registry.service import RegistryService

TRAIN_ROWS = 2000
LEAKED_DEV_ROWS = 25


@pytest.fixture(scope="module")
def sst2(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("sst2-home")
    return datasets.load("sst2", Settings(home=home, data_home=shared_data), progress=False)


@pytest.fixture(scope="module")
def sms(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("sms-home")
    return datasets.load("sms_spam", Settings(home=home, data_home=shared_data), progress=False)


@pytest.fixture
def registry(tmp_path: Path, shared_data: Path) -> Iterator[RegistryService]:
    reg, engine = open_registry(Settings(home=tmp_path / "home", data_home=shared_data))
    try:
        yield reg
    finally:
        engine.dispose()


def sst2_slice(sst2: DatasetSplits) -> TrainingData:
    """2,000 training rows plus a few dev rows (with extra whitespace) that must be dropped."""
    assert sst2.eval is not None
    texts = sst2.train.texts[:TRAIN_ROWS]
    labels = sst2.train.labels[:TRAIN_ROWS]
    texts = texts + [f"  {t} " for t in sst2.eval.texts[:LEAKED_DEV_ROWS]]
    labels = labels + sst2.eval.labels[:LEAKED_DEV_ROWS]
    train = LabeledTexts(texts=texts, labels=labels)
    sha = DatasetSplits(
        name="sst2", train=train, eval=sst2.eval, eval_name="dev", labels=sst2.labels
    ).sha256()
    return TrainingData(
        name="sst2",
        train_texts=texts,
        train_labels=labels,
        sha256=sha,
        eval_texts=sst2.eval.texts,
        eval_labels=sst2.eval.labels,
        eval_split="dev",
    )


def test_sst2_train_report_lineage_and_skip(sst2: DatasetSplits, registry: RegistryService) -> None:
    data = sst2_slice(sst2)
    assert sst2.eval is not None
    stages: list[tuple[str, float]] = []
    result = train_text_classification(
        registry, "sst2-small", data, progress=lambda s, f: stages.append((s, f))
    )
    assert not result.skipped
    assert stages[-1] == ("done", 1.0)
    version = result.version
    assert (version.name, version.version, version.status) == ("sst2-small", 1, "ready")
    assert version.aliases == ("production",)
    assert version.labels == ["negative", "positive"]

    report = result.report
    assert report == version.evaluation
    assert report["split"] == "dev"
    assert report["n"] == len(sst2.eval)
    assert 0.65 < report["accuracy"] <= 1.0
    assert 0.6 < report["macro_f1"] <= 1.0
    assert 0.7 < report["roc_auc"] <= 1.0
    assert set(report["per_class"]) == {"negative", "positive"}
    for stats in report["per_class"].values():
        assert set(stats) == {"precision", "recall", "f1", "support"}
    assert sum(s["support"] for s in report["per_class"].values()) == len(sst2.eval)
    matrix = report["confusion_matrix"]
    assert matrix["labels"] == ["negative", "positive"]
    assert sum(map(sum, matrix["matrix"])) == len(sst2.eval)

    lineage = version.lineage
    assert lineage["dataset"] == "sst2"
    assert lineage["dataset_sha256"] == data.sha256
    assert lineage["params"] == TrainParams().model_dump()
    assert lineage["aiweb_version"] == aiweb_version
    assert len(lineage["fingerprint"]) == 64
    assert lineage["test_size"] is None

    # no dev text in training: the injected dev rows (and any the slice shares) are dropped
    split = lineage["split"]
    dev = {t.strip() for t in sst2.eval.texts}
    in_dev = sum(t.strip() in dev for t in data.train_texts)
    assert split["eval_split"] == "dev"
    assert split["train_rows_dropped_as_in_eval"] == in_dev >= LEAKED_DEV_ROWS
    assert split["train_rows"] == len(data.train_texts) - in_dev
    assert split["test_rows"] == len(sst2.eval)

    # the same data and parameters again: the same version, nothing trained
    again = train_text_classification(
        registry, "sst2-small", data, skip_if_same=True, progress=lambda s, f: stages.append((s, f))
    )
    assert again.skipped
    assert again.version.version == 1
    assert again.report == report
    assert [v.version for v in registry.list_versions("sst2-small")] == [1]

    # other parameters: a new version, not production
    other = train_text_classification(
        registry, "sst2-small", data, params=TrainParams(C=0.5), skip_if_same=True
    )
    assert not other.skipped
    assert other.version.version == 2
    assert other.version.lineage["fingerprint"] != lineage["fingerprint"]
    assert registry.store.resolve_alias("sst2-small", "production") == 1


def test_spam_held_out_split_is_deduplicated(sms: DatasetSplits, registry: RegistryService) -> None:
    texts = sms.train.texts[:1500]
    labels = sms.train.labels[:1500]
    # duplicates (exact and with extra whitespace) must never straddle the split
    texts = texts + texts[:200] + [f" {t}  " for t in texts[200:300]]
    labels = labels + labels[:200] + labels[200:300]
    data = TrainingData(
        name="sms_spam",
        train_texts=texts,
        train_labels=labels,
        sha256=LabeledTexts(texts=texts, labels=labels).sha256(),
    )
    result = train_text_classification(registry, "spam", data, test_size=0.2)
    version = result.version
    split = version.lineage["split"]
    assert version.lineage["test_size"] == 0.2
    assert split["duplicates_removed"] >= 300
    assert "de-duplicated" in split["eval_split"]
    assert set(version.labels) == {"ham", "spam"}
    assert result.report["n"] == split["test_rows"]
    assert result.report["accuracy"] > 0.85

    tr_t, _tr_l, te_t, _te_l, info = split_train_test(
        texts, labels, test_size=0.2, seed=TrainParams().seed
    )
    assert {t.strip() for t in tr_t} & {t.strip() for t in te_t} == set()
    assert len(set(tr_t)) == len(tr_t)
    assert len(set(te_t)) == len(te_t)
    assert (info["train_rows"], info["test_rows"]) == (split["train_rows"], split["test_rows"])
    assert len(tr_t) + len(te_t) == len({t.strip() for t in texts})
