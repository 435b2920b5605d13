"""The built-in loaders on the real files of the shared data folder (AIWEB_DATA_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiweb import datasets
from aiweb.config import Settings
from aiweb.datasets import DatasetSplits

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_home() -> Path:
    value = os.environ.get("AIWEB_DATA_HOME")
    if not value:
        pytest.skip("AIWEB_DATA_HOME is not set")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = PROJECT_ROOT / path  # CI sets it relative to the project root
    assert path.is_dir(), f"AIWEB_DATA_HOME={value} is not a directory"
    return path


@pytest.fixture(scope="module")
def sst2(data_home: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, data_home=data_home)
    assert datasets.locate("sst2", settings, progress=False) == data_home / "sst2"
    return datasets.load("sst2", settings, progress=False)


@pytest.fixture(scope="module")
def sms(data_home: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetSplits:
    home = tmp_path_factory.mktemp("home")
    return datasets.load("sms_spam", Settings(home=home, data_home=data_home), progress=False)


def test_sst2_sizes_and_labels(sst2: DatasetSplits) -> None:
    assert sst2.name == "sst2"
    assert len(sst2.train) == 67_349
    assert sst2.eval is not None
    assert sst2.eval_name == "dev"
    assert len(sst2.eval) == 872
    assert sst2.labels == ["negative", "positive"]
    assert sst2.train.labels.count("negative") == 29_780
    assert sst2.eval.labels.count("negative") == 428
    assert sst2.train.texts[0] == "hide new secretions from the parental units"


def test_sst2_texts_are_stripped(sst2: DatasetSplits) -> None:
    assert sst2.eval is not None
    for text in (*sst2.train.texts, *sst2.eval.texts):
        assert text
        assert text == text.strip()
    assert not set(sst2.eval.texts) & set(sst2.train.texts)


def test_sms_sizes_labels_and_entities(sms: DatasetSplits) -> None:
    assert sms.name == "sms_spam"
    assert sms.eval is None
    assert len(sms.train) == 5_574
    assert sms.train.labels.count("spam") == 747
    assert sms.labels == ["ham", "spam"]
    assert not any("&lt;" in text or "&gt;" in text or "&amp;" in text for text in sms.train.texts)
    assert any("<#>" in text for text in sms.train.texts)
    assert not any(0x80 <= ord(ch) < 0xA0 for text in sms.train.texts for ch in text)
