"""Entity-level evaluation of token classification: exact-match precision, recall and F1.

An entity counts as correct only when its type, its first and its last token (or
character) are all right, as in the CoNLL-2002/2003 shared tasks (Tjong Kim Sang & De
Meulder, "Introduction to the CoNLL-2003 Shared Task: Language-Independent Named Entity
Recognition", CoNLL 2003; their ``conlleval`` script). Entities are read from IOB tags by
the CoNLL rules (:func:`aiweb.entities.data.decode_tags`), exactly as ``seqeval``
(Nakayama 2018, https://github.com/chakki-works/seqeval) computes them in its default
(non-strict) mode: :func:`evaluate_tags` gives the numbers of ``seqeval.metrics``
``precision_recall_fscore_support`` and ``classification_report`` (with
``zero_division=0``), and :func:`format_report` its table.

For each entity type: ``precision = correct / predicted``, ``recall = correct / true``,
``f1 = 2 * precision * recall / (precision + recall)``, each 0.0 when its denominator is
0. Averages:

- ``micro``: the same formulas on the counts summed over types (the CoNLL figure);
- ``macro``: the unweighted mean of the per-type values, over every type found in the
  true or the predicted entities;
- ``weighted``: the mean weighted by each type's number of true entities.

Entities are compared as sets within each sentence (or text): predicting one entity twice
counts once. :func:`evaluate_spans` does the same on character spans
(:class:`aiweb.entities.data.Span`), so a model that answers offsets is scored without
going through tags; on spans decoded from tags, it gives the numbers of
:func:`evaluate_tags`.

:func:`evaluate_overlap` is the lenient reading used across corpora whose guidelines draw
span boundaries differently: a predicted span is correct when it overlaps a true span of
the same type in the same text, and a true span is found when a predicted one of its type
overlaps it (the "partial match" of Segura-Bedmar, Martínez & Herrero Zazo, "SemEval-2013
Task 9: Extraction of Drug-Drug Interactions", SemEval 2013, without the half credit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiweb.entities.data import Span, decode_tags
from aiweb.errors import InvalidInputError

__all__ = [
    "EntityReport",
    "Scores",
    "evaluate_overlap",
    "evaluate_spans",
    "evaluate_tags",
    "format_report",
]

_AVERAGES = ("micro", "macro", "weighted")


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of one entity type or one average.

    Attributes:
        precision: in ``[0, 1]``.
        recall: in ``[0, 1]``.
        f1: harmonic mean of precision and recall, in ``[0, 1]``.
        support: number of true entities (summed over types for an average).
        predicted: number of predicted entities (summed for an average).
        correct: number of predicted entities that are true (summed for an average).
    """

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    correct: int


@dataclass(frozen=True)
class EntityReport:
    """Entity-level scores.

    Attributes:
        per_type: entity type -> its scores, sorted by type; every type found in the true
            or the predicted entities.
        micro: scores on the counts summed over types (the CoNLL figure).
        macro: unweighted mean over ``per_type``.
        weighted: mean over ``per_type`` weighted by support.
    """

    per_type: dict[str, Scores]
    micro: Scores
    macro: Scores
    weighted: Scores

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data (for a model version's evaluation).

        Returns:
            ``{"per_type": {type: scores}, "micro": scores, "macro": scores,
            "weighted": scores}`` where each ``scores`` is ``{"precision", "recall",
            "f1", "support", "predicted", "correct"}``.
        """
        return {
            "per_type": {label: asdict(scores) for label, scores in self.per_type.items()},
            **{name: asdict(getattr(self, name)) for name in _AVERAGES},
        }


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    denominator = precision + recall
    return 2.0 * precision * recall / denominator if denominator else 0.0


def _scores(correct: int, predicted: int, support: int) -> Scores:
    precision = _divide(correct, predicted)
    recall = _divide(correct, support)
    return Scores(precision, recall, _f1(precision, recall), support, predicted, correct)


def _report(
    true: set[tuple[int, int, int, str]], pred: set[tuple[int, int, int, str]]
) -> EntityReport:
    """The report from entity sets ``(sentence, start, end, type)``."""
    true_n = Counter(e[3] for e in true)
    pred_n = Counter(e[3] for e in pred)
    correct_n = Counter(e[3] for e in true & pred)
    labels = sorted(set(true_n) | set(pred_n))
    per_type = {label: _scores(correct_n[label], pred_n[label], true_n[label]) for label in labels}
    support, predicted, correct = len(true), len(pred), len(true & pred)
    micro = _scores(correct, predicted, support)
    rows = list(per_type.values())
    n = len(rows)
    macro = Scores(
        precision=_divide(sum(r.precision for r in rows), n),
        recall=_divide(sum(r.recall for r in rows), n),
        f1=_divide(sum(r.f1 for r in rows), n),
        support=support,
        predicted=predicted,
        correct=correct,
    )
    weighted = Scores(
        precision=_divide(sum(r.precision * r.support for r in rows), support),
        recall=_divide(sum(r.recall * r.support for r in rows), support),
        f1=_divide(sum(r.f1 * r.support for r in rows), support),
        support=support,
        predicted=predicted,
        correct=correct,
    )
    return EntityReport(per_type=per_type, micro=micro, macro=macro, weighted=weighted)


def _sequences(value: object, name: str) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInputError(f"{name} must be a list of sequences (one per sentence)")
    return list(value)


def evaluate_tags(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> EntityReport:
    """Entity-level scores of predicted IOB tags against true ones.

    The entities of each sentence are read by the CoNLL rules (IOB1, IOB2 and BIOES are
    all accepted; :func:`aiweb.entities.data.decode_tags`), as ``seqeval``'s default mode
    reads them (Tjong Kim Sang & De Meulder 2003; seqeval).

    Args:
        y_true: the true tags, one sequence per sentence (``[["B-PER", "I-PER", "O"],
            …]``).
        y_pred: the predicted tags, aligned with ``y_true`` sentence by sentence and
            token by token.

    Returns:
        The :class:`EntityReport`.

    Raises:
        InvalidInputError: a different number of sentences, a sentence with a different
            number of tags, a string where a sequence of tags belongs, a malformed tag
            (names the sentence and the tag).
    """
    true_rows, pred_rows = _sequences(y_true, "y_true"), _sequences(y_pred, "y_pred")
    if len(true_rows) != len(pred_rows):
        raise InvalidInputError(
            f"y_true has {len(true_rows)} sentences but y_pred has {len(pred_rows)}"
        )
    true: set[tuple[int, int, int, str]] = set()
    pred: set[tuple[int, int, int, str]] = set()
    for i, (t, p) in enumerate(zip(true_rows, pred_rows, strict=True)):
        if isinstance(t, str) or isinstance(p, str):
            raise InvalidInputError(f"sentence {i}: expected a sequence of tags, found a string")
        if len(t) != len(p):
            raise InvalidInputError(f"sentence {i}: {len(t)} true tags but {len(p)} predicted")
        for target, tags, name in ((true, t, "y_true"), (pred, p, "y_pred")):
            try:
                spans = decode_tags(tags)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{name} sentence {i}: {exc.detail}") from None
            target.update((i, s.start, s.end, s.label) for s in spans)
    return _report(true, pred)


def evaluate_spans(
    y_true: Sequence[Iterable[Span]], y_pred: Sequence[Iterable[Span]]
) -> EntityReport:
    """Entity-level scores of predicted character spans against true ones.

    An entity is correct when its ``(start, end, label)`` equals a true one of the same
    text: the CoNLL exact-match rule (Tjong Kim Sang & De Meulder 2003) on offsets. Spans
    may overlap (SkillSpan's Skill and Knowledge layers are scored together, each type on
    its own).

    Args:
        y_true: the true spans of each text (``[example.spans for example in gold]``).
        y_pred: the predicted spans of each text, aligned with ``y_true``.

    Returns:
        The :class:`EntityReport`.

    Raises:
        InvalidInputError: a different number of texts, or an item that is not a
            :class:`~aiweb.entities.data.Span`.
    """
    true_rows, pred_rows = _sequences(y_true, "y_true"), _sequences(y_pred, "y_pred")
    if len(true_rows) != len(pred_rows):
        raise InvalidInputError(
            f"y_true has {len(true_rows)} texts but y_pred has {len(pred_rows)}"
        )
    true: set[tuple[int, int, int, str]] = set()
    pred: set[tuple[int, int, int, str]] = set()
    for i, (t, p) in enumerate(zip(true_rows, pred_rows, strict=True)):
        for target, spans, name in ((true, t, "y_true"), (pred, p, "y_pred")):
            for span in spans:
                if not isinstance(span, Span):
                    raise InvalidInputError(
                        f"{name} text {i}: expected Span items, found {type(span).__name__}"
                    )
                target.add((i, span.start, span.end, span.label))
    return _report(true, pred)


def evaluate_overlap(y_true: Sequence[Iterable[Span]], y_pred: Sequence[Iterable[Span]]) -> Scores:
    """Micro precision, recall and F1 by overlap (module docs): lenient where
    :func:`evaluate_spans` is exact.

    ``precision = predicted spans overlapping a true span of their type / predicted``,
    ``recall = true spans overlapped by a predicted span of their type / true``; spans
    are sets per text (a span given twice counts once); ``correct`` counts the predicted
    spans that overlap.

    Args:
        y_true: the true spans of each text.
        y_pred: the predicted spans of each text, aligned with ``y_true``.

    Returns:
        The micro-averaged :class:`Scores`.

    Raises:
        InvalidInputError: a different number of texts, or an item that is not a
            :class:`~aiweb.entities.data.Span`.
    """
    true_rows, pred_rows = _sequences(y_true, "y_true"), _sequences(y_pred, "y_pred")
    if len(true_rows) != len(pred_rows):
        raise InvalidInputError(
            f"y_true has {len(true_rows)} texts but y_pred has {len(pred_rows)}"
        )
    support = predicted = correct = found = 0
    for i, (t, p) in enumerate(zip(true_rows, pred_rows, strict=True)):
        true: set[Span] = set()
        pred: set[Span] = set()
        for target, spans, name in ((true, t, "y_true"), (pred, p, "y_pred")):
            for span in spans:
                if not isinstance(span, Span):
                    raise InvalidInputError(
                        f"{name} text {i}: expected Span items, found {type(span).__name__}"
                    )
                target.add(span)
        support += len(true)
        predicted += len(pred)
        correct += sum(any(_overlap(a, b) for b in true) for a in pred)
        found += sum(any(_overlap(a, b) for b in pred) for a in true)
    precision, recall = _divide(correct, predicted), _divide(found, support)
    return Scores(precision, recall, _f1(precision, recall), support, predicted, correct)


def _overlap(a: Span, b: Span) -> bool:
    return a.label == b.label and a.start < b.end and b.start < a.end


def format_report(report: EntityReport, *, digits: int = 4) -> str:
    """The per-type table of a report, in plain fixed-width text.

    The layout is ``seqeval.metrics.classification_report``'s (itself scikit-learn's):
    a header, one row per type, a blank line, then the ``micro avg``, ``macro avg`` and
    ``weighted avg`` rows, each with precision, recall, F1 and support (the number of true
    entities).

    Args:
        report: the scores.
        digits: decimals of precision, recall and F1.

    Returns:
        The table, lines ending in ``\\n``.
    """
    width = max([len("weighted avg"), digits, *(len(label) for label in report.per_type)])
    head = "{:>{width}s} " + " {:>9}" * 4
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    lines = [head.format("", "precision", "recall", "f1-score", "support", width=width), "\n\n"]
    for label, s in report.per_type.items():
        lines.append(
            row.format(label, s.precision, s.recall, s.f1, s.support, width=width, digits=digits)
        )
    lines.append("\n")
    for name in _AVERAGES:
        s = getattr(report, name)
        lines.append(
            row.format(
                f"{name} avg", s.precision, s.recall, s.f1, s.support, width=width, digits=digits
            )
        )
    return "".join(lines)
