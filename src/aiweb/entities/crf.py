"""The baseline of the ``token-classification`` task: a linear-chain CRF on word-shape
features.

A linear-chain conditional random field (Lafferty, McCallum & Pereira, "Conditional
Random Fields: Probabilistic Models for Segmenting and Labeling Sequence Data", ICML 2001)
trained by L-BFGS with elastic-net regularisation (``c1`` L1, ``c2`` L2) through
``sklearn-crfsuite`` (python-crfsuite / CRFsuite, Okazaki 2007), on the features of the
sklearn-crfsuite tutorial ("Tutorial", https://sklearn-crfsuite.readthedocs.io/en/latest/tutorial.html):
for each token its lower-cased form, its last 2 and 3 characters (and first 3), whether it
is upper-case, title-case or digits, its word shape (``Xxxx``, ``dd``) and those of its
neighbours at ±1 and ±2, and ``BOS``/``EOS`` at the ends of a sentence. Tags are IOB2.

Overlapping spans (SkillSpan's layers) are resolved as for the spaCy model
(:func:`aiweb.entities.model.without_overlaps`). The baseline is measured in the same run
as the model (:func:`aiweb.entities.training.train_and_evaluate`) and never serialised.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import sklearn_crfsuite

from aiweb.entities.data import Example, Span, TokenSpan, char_spans, decode_tags, encode_tags
from aiweb.entities.model import Entity, without_overlaps
from aiweb.errors import InvalidInputError

__all__ = ["CrfModel", "fit_crf", "regex_tokens", "token_features"]

#: words (with inner apostrophes, hyphens, dots), @mentions, #hashtags, URLs; else one
#: non-space character
_TOKEN = re.compile(r"https?://\S+|[@#]?\w+(?:[-'\u2019.&]\w+)*|\S")
_SHAPES = ((re.compile(r"[A-Z]"), "X"), (re.compile(r"[a-z]"), "x"), (re.compile(r"[0-9]"), "d"))
_RUNS = re.compile(r"(.)\1{2,}")


def regex_tokens(text: str) -> list[tuple[int, int]]:
    """Tokenise a raw text for the CRF: URLs, @mentions, #hashtags and words are tokens;
    any other non-space character is a token of its own.

    Returns:
        ``(start, end)`` character offsets of each token, in order.
    """
    return [m.span() for m in _TOKEN.finditer(text)]


def _shape(word: str) -> str:
    for pattern, letter in _SHAPES:
        word = pattern.sub(letter, word)
    return _RUNS.sub(r"\1\1", word)  # Xxxxxxx -> Xxx: runs of a class capped at 2


def _word(word: str, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}lower": word.lower(),
        f"{prefix}istitle": word.istitle(),
        f"{prefix}isupper": word.isupper(),
        f"{prefix}shape": _shape(word),
    }


def token_features(tokens: Sequence[str]) -> list[dict[str, Any]]:
    """The CRF features of each token of a sentence (the sklearn-crfsuite tutorial's
    ``word2features``, with shapes and a ±2 window).

    Args:
        tokens: the sentence's tokens.

    Returns:
        One feature dict per token (string or boolean values, as ``sklearn_crfsuite``
        takes them).
    """
    rows: list[dict[str, Any]] = []
    for i, word in enumerate(tokens):
        features: dict[str, Any] = {
            "bias": 1.0,
            "lower": word.lower(),
            "suffix3": word[-3:].lower(),
            "suffix2": word[-2:].lower(),
            "prefix3": word[:3].lower(),
            "isupper": word.isupper(),
            "istitle": word.istitle(),
            "isdigit": word.isdigit(),
            "shape": _shape(word),
            "mention": word.startswith("@"),
            "hashtag": word.startswith("#"),
        }
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(tokens):
                features.update(_word(tokens[j], f"{offset:+d}:"))
        if i == 0:
            features["BOS"] = True
        if i == len(tokens) - 1:
            features["EOS"] = True
        rows.append(features)
    return rows


def _offsets(example: Example) -> list[tuple[int, int]]:
    """The example's own tokens, else :func:`regex_tokens` of its text."""
    if example.token_offsets is not None:
        return list(example.token_offsets)
    return regex_tokens(example.text)


def _tags(offsets: Sequence[tuple[int, int]], spans: Sequence[Span]) -> list[str]:
    """IOB2 tags of the disjoint ``spans`` over ``offsets``; a span that does not fall on
    token boundaries is grown to the tokens it touches."""
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    token_spans = []
    for span in spans:
        first = next((k for k, e in enumerate(ends) if e > span.start), None)
        last = next((k for k in range(len(starts) - 1, -1, -1) if starts[k] < span.end), None)
        if first is not None and last is not None and first <= last:
            token_spans.append(TokenSpan(first, last + 1, span.label))
    kept: list[TokenSpan] = []
    for ts in sorted(token_spans, key=lambda t: (-(t.end - t.start), t.start)):
        if all(ts.end <= k.start or k.end <= ts.start for k in kept):
            kept.append(ts)
    return encode_tags(len(offsets), sorted(kept), "IOB2")


class CrfModel:
    """A fitted CRF baseline.

    Attributes:
        labels: entity types it predicts, sorted.
        info: parameters, training seconds, number of features.
    """

    def __init__(self, crf: Any, labels: Sequence[str], info: dict[str, Any]) -> None:
        self.crf_ = crf
        self.labels: tuple[str, ...] = tuple(sorted(labels))
        self.info = info

    def _predict(
        self, texts: Sequence[str], offsets: Sequence[Sequence[tuple[int, int]]]
    ) -> list[list[Entity]]:
        rows = [
            token_features([text[s:e] for s, e in tokens])
            for text, tokens in zip(texts, offsets, strict=True)
        ]
        predicted = self.crf_.predict(rows) if rows else []
        result: list[list[Entity]] = []
        for text, tokens, tags in zip(texts, offsets, predicted, strict=True):
            spans = char_spans(tokens, decode_tags(list(tags))) if tokens else []
            result.append(
                [Entity(text[s.start : s.end], s.label, s.start, s.end, 1.0) for s in spans]
            )
        return result

    def extract(self, texts: Sequence[str | Example]) -> list[list[Entity]]:
        """The entities of each text (or example, on its own tokens when it has them).

        Args:
            texts: raw texts (tokenised by :func:`regex_tokens`) or
                :class:`~aiweb.entities.data.Example` (their spans are not read).

        Returns:
            One list per input, aligned with it; offsets into the text; ``score`` is 1.0
            (the Viterbi path, no marginal).
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError("texts must be a list of strings or examples")
        plain: list[str] = []
        offsets: list[list[tuple[int, int]]] = []
        for i, item in enumerate(texts):
            if isinstance(item, Example):
                plain.append(item.text)
                offsets.append(_offsets(item))
            elif isinstance(item, str):
                plain.append(item)
                offsets.append(regex_tokens(item))
            else:
                raise InvalidInputError(f"text {i}: expected a string or an Example")
        return self._predict(plain, offsets)

    def extract_examples(self, examples: Sequence[Example]) -> list[list[Entity]]:
        """:meth:`extract` of examples (on their own tokens), as the spaCy model has it."""
        return self.extract(list(examples))


def fit_crf(
    train: Sequence[Example],
    *,
    seed: int = 0,
    c1: float = 0.1,
    c2: float = 0.1,
    max_iterations: int = 100,
) -> CrfModel:
    """Fit the CRF baseline.

    Args:
        train: training examples (on their own tokens when they have them, else on
            :func:`regex_tokens`; overlapping spans resolved by
            :func:`~aiweb.entities.model.without_overlaps`).
        seed: recorded only: L-BFGS on a fixed feature set is deterministic.
        c1: L1 regularisation coefficient.
        c2: L2 regularisation coefficient.
        max_iterations: L-BFGS iterations.

    Returns:
        The :class:`CrfModel`.

    Raises:
        InvalidInputError: no training example has an entity.
    """
    if not any(e.spans for e in train):
        raise InvalidInputError("no training example has an entity: nothing to learn")
    started = time.perf_counter()
    features, targets = [], []
    labels: set[str] = set()
    for example in train:
        offsets = _offsets(example)
        if not offsets:
            continue
        spans = without_overlaps(example.spans)
        labels.update(s.label for s in spans)
        features.append(token_features([example.text[s:e] for s, e in offsets]))
        targets.append(_tags(offsets, spans))
    crf = sklearn_crfsuite.CRF(
        algorithm="lbfgs",
        c1=c1,
        c2=c2,
        max_iterations=max_iterations,
        all_possible_transitions=True,
    )
    crf.fit(features, targets)
    info = {
        "algorithm": "crf (lbfgs)",
        "c1": c1,
        "c2": c2,
        "max_iterations": max_iterations,
        "seed": seed,
        "train_examples": len(features),
        "train_seconds": round(time.perf_counter() - started, 3),
    }
    return CrfModel(crf, sorted(labels), info)
