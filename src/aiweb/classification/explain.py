"""Why a text classifier answered what it did: per-word contributions to a class's logit.

Two methods, chosen by the model's runtime:

``linear`` (TF-IDF pipelines, ``exact: true``)
    The classifier is a logistic regression on TF-IDF features, so a class's logit is
    ``intercept + Σ_j coef_j · x_j`` over the non-zero features ``x_j`` of the input.
    Each term is one feature's contribution, exactly. Every non-zero feature is a word
    n-gram or a character n-gram (``char_wb``) of the input: the explainer makes the
    vectorizer's n-grams *with character offsets*, builds the model's TF-IDF row from them
    (the same numbers as the pipeline's ``transform``, without a second pass over the
    text) and gives each feature's term to the n-gram occurrences that produced it — a
    hashed column to every n-gram of this input that hashes to it, a vocabulary column
    to the occurrences of its n-gram, in equal shares. An occurrence's share goes to the
    words it covers: a word n-gram in equal parts to its words, a character n-gram in
    proportion to the characters it has in each word (a ``char_wb`` padding space counts
    for the word it pads). Per word, the shares are summed. So ``base_value (the
    intercept) + Σ word weights == logit``, to rounding (float64; the tests hold it to
    1e-6).

``occlusion`` (sentence-embedding and stacked features, any other runtime, ``exact: false``)
    A word's weight is ``logit(text) - logit(text without the word)``: leave-one-word-out.
    The text, each of its variants and the text with every scored word removed (whose
    logit is ``base_value``) are scored in one batch (one embedding call). It needs only
    class names and ``predict_proba(texts)`` (:class:`TextScorer`), so it explains any
    runtime that offers them: minilm heads, the stacked TF-IDF + MiniLM blend, a later
    fine-tuned transformer. At most
    :data:`MAX_OCCLUSION_WORDS` words (the first ones) are scored; ``skipped_words``
    says how many more the text has. Interactions between words are not seen, and the
    weights need not add up to ``logit - base_value``.

Words are the runs of word characters and the runs of other non-space characters of
the original text (``\\w+|[^\\w\\s]+``: ``"good,"`` is the words ``good`` and ``,``); each
carries ``start`` and ``end``, character offsets into the input as sent, so
``input[start:end] == feature`` always (lower-casing that changes a text's length, such
as ``"İ"``, is mapped back).

Logits (the units of every weight and of ``base_value``):

- binary models: the log-odds of the target, ``log p(target) / (1 - p(target))``:
  scikit-learn's ``decision_function`` for the second class, its negation for the first;
- multi-class (softmax) models: the target's softmax input ``z_target = coef_target ·
  x + intercept_target`` (``p_k = exp(z_k) / Σ_j exp(z_j)``), scikit-learn's
  ``decision_function`` column of the target — not a log-odds against the rest.

A runtime that gives probabilities only (no ``proba_and_logits``: the stacked blend,
whose probabilities are an average of two models') is explained in the logits of its
probabilities: the log-odds ``log p / (1 - p)`` of the target for two classes (the same
units as above), ``log p_target`` for more (a softmax input up to a constant per text, so
a word's weight is the change of the target's log-probability).

For ``linear`` the logit is computed in float64 from the model's coefficients and
features (scikit-learn computes it in the features' float32); ``scores`` are the
model's ``predict_proba``, as the predict route (on scikit-learn) answers them.

Contributions are sorted by decreasing ``|weight|`` (then by position) and cut at
``top_k`` (all when 0). What the cut leaves out is reported in ``omitted`` (how many
words and the sum of their weights), so ``base_value + Σ listed + omitted.weight ==
logit`` holds for a linear explanation whatever ``top_k``. Words whose weight is exactly
0 (no feature of the model covers them) are not listed.

Nothing here runs on the predict path: explanations are computed only when asked, from
the served version's scikit-learn pipeline (also when onnxruntime serves its
predictions).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio.to_thread
import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.utils import murmurhash3_32

from aiweb.classification.loader import LoadedModel, ModelLoader
from aiweb.classification.model import TextClassifier, _unrolled, linear_proba
from aiweb.classification.onnx_export import DualRuntime
from aiweb.classification.rejection import Rejection, decide
from aiweb.classification.schemas import MAX_EXPLAIN_INPUTS, ExplainRequest
from aiweb.config import Settings
from aiweb.errors import InvalidInputError, PayloadTooLargeError
from aiweb.monitoring.logs import MODEL, VERSION
from aiweb.registry.entities import ModelRef

__all__ = [
    "MAX_EXPLAIN_INPUTS",
    "MAX_OCCLUSION_WORDS",
    "WORD_REGEX",
    "ExplanationService",
    "LinearTextExplainer",
    "OcclusionExplainer",
    "TextScorer",
    "WordWeights",
    "explainer_for",
    "logits_of_proba",
    "words_of",
]

#: The words of a text: runs of word characters, runs of other non-space characters.
WORD_REGEX = re.compile(r"\w+|[^\w\s]+")
#: Words occlusion scores per text (the first ones); the rest are counted as skipped.
MAX_OCCLUSION_WORDS = 64


def words_of(text: str) -> list[tuple[int, int]]:
    """``[(start, end), …]`` of the words of ``text`` (:data:`WORD_REGEX`), in order."""
    return [m.span() for m in WORD_REGEX.finditer(text)]


@dataclass
class WordWeights:
    """One text's explanation before it is shaped for the API.

    Attributes:
        proba: the probability of every class (the model's column order).
        logits: the logit of every class (see the module docs for binary models).
        words: ``(start, end)`` of the text's words.
        weights: one weight per word, in logit units of ``target``.
        target: the explained class's column.
        base_value: the target's logit with no feature.
        skipped: words not scored (occlusion past :data:`MAX_OCCLUSION_WORDS`).
    """

    proba: npt.NDArray[np.float64]
    logits: npt.NDArray[np.float64]
    words: list[tuple[int, int]]
    weights: npt.NDArray[np.float64]
    target: int
    base_value: float
    skipped: int = 0


#: picks the explained column of a text from its probabilities: ``choose(proba_row)``
TargetChooser = Callable[[npt.NDArray[np.float64]], int]

#: Smallest probability occlusion takes a logarithm of (:func:`logits_of_proba`).
_MIN_PROBA = 1e-12


@runtime_checkable
class TextScorer(Protocol):
    """What the occlusion explainer needs of a model: its class names and the
    probabilities of raw texts (``(n, len(labels))`` float64, rows summing to 1)."""

    labels: list[str]

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]: ...


@runtime_checkable
class _ScoresLogits(Protocol):
    """A :class:`TextScorer` that also gives the logits its probabilities are the
    softmax (or logistic) of, in one pass: ``(proba, logits)``."""

    def proba_and_logits(
        self, texts: list[str]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...


def logits_of_proba(proba: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Logits of probabilities alone: for two classes each class's log-odds ``(-d, d)``
    with ``d = log p_1 - log p_0``, else ``log p`` (probabilities clipped at 1e-12)."""
    logp = np.log(np.clip(np.asarray(proba, dtype=np.float64), _MIN_PROBA, 1.0))
    if logp.shape[1] == 2:
        d = logp[:, 1] - logp[:, 0]
        return np.stack([-d, d], axis=1)
    return logp


def _target_row(clf: LogisticRegression, target: int) -> tuple[int, float, float]:
    """``(coefficient row, sign, intercept)`` of the target's logit: the logit is
    ``sign · (coef_[row] · x) + intercept``."""
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    if clf.coef_.shape[0] == 1:  # binary: one row, the log-odds of classes_[1]
        sign = 1.0 if target == 1 else -1.0
        return 0, sign, float(sign * intercept[0])
    return target, 1.0, float(intercept[target])


# -- linear ----------------------------------------------------------------------------

#: an occurrence's share of the words it covers: ``[(word index, fraction), …]``
Shares = list[tuple[int, float]]


class _Text:
    """A text as one vectorizer sees it: its lower-cased form, and for each character
    of that form the word of the original text it came from."""

    def __init__(self, text: str, lowercase: bool, word_of: npt.NDArray[np.int64]) -> None:
        doc = text.lower() if lowercase else text
        if len(doc) == len(text):  # lower-casing never shortens a character
            self.word_at = word_of
        else:  # a character that lower-cases to several ("İ" -> "i̇"): map them back
            lengths = [len(c.lower()) for c in text]
            self.word_at = np.repeat(word_of, lengths)
        self.doc = doc

    def shares(self, start: int, end: int) -> Shares:
        """The words of the doc's characters ``[start, end)``, by share of characters."""
        covered = self.word_at[start:end]
        first, last = int(covered[0]), int(covered[-1])
        if first == last:
            return [(first, 1.0)]
        n = len(covered)
        return [(int(w), c / n) for w, c in Counter(covered.tolist()).items()]


def _word_ngrams(vec: Any, text: _Text) -> tuple[list[str], list[Shares]]:
    """The word n-grams of ``vec`` (its analyzer's order) and the words each covers."""
    pattern = re.compile(vec.token_pattern)
    group = 1 if pattern.groups == 1 else 0
    spans = [m.span(group) for m in pattern.finditer(text.doc)]
    tokens = [text.doc[a:b] for a, b in spans]
    token_shares = [text.shares(a, b) for a, b in spans]
    min_n, max_n = vec.ngram_range
    grams: list[str] = []
    shares: list[Shares] = []
    for n in range(min_n, min(max_n, len(tokens)) + 1):
        for i in range(len(tokens) - n + 1):
            grams.append(" ".join(tokens[i : i + n]))
            if n == 1:
                shares.append(token_shares[i])
                continue
            merged: dict[int, float] = {}
            for part in token_shares[i : i + n]:
                for w, f in part:
                    merged[w] = merged.get(w, 0.0) + f / n
            shares.append(list(merged.items()))
    return grams, shares


_NON_SPACE = re.compile(r"\S+")


def _char_wb_ngrams(vec: Any, text: _Text) -> tuple[list[str], list[Shares]]:
    """The ``char_wb`` n-grams of ``vec`` (scikit-learn's order and short-word rule) and
    the words each covers (a padding space counts for the word it pads)."""
    min_n, max_n = vec.ngram_range
    grams: list[str] = []
    shares: list[Shares] = []
    word_at = text.word_at
    for m in _NON_SPACE.finditer(text.doc):
        a, b = m.span()
        w = " " + m.group() + " "
        w_len = len(w)
        first, last = int(word_at[a]), int(word_at[b - 1])
        if first == last:  # the usual case: every n-gram of this token is in one word
            share = [(first, 1.0)]
            for n in range(min_n, max_n + 1):
                if w_len <= n:  # a word shorter than n: counted once, for the first such n
                    grams.append(w)
                    shares.append(share)
                    break
                grams.extend([w[i : i + n] for i in range(w_len - n + 1)])
                shares.extend([share] * (w_len - n + 1))
            continue
        at = [first, *word_at[a:b].tolist(), last]
        for n in range(min_n, max_n + 1):
            offset = 0
            while True:
                covered = at[offset : offset + n]
                grams.append(w[offset : offset + n])
                if covered[0] == covered[-1]:
                    shares.append([(covered[0], 1.0)])
                else:
                    size = len(covered)
                    shares.append([(x, c / size) for x, c in Counter(covered).items()])
                if offset + n >= w_len:
                    break
                offset += 1
            if offset == 0:  # a word shorter than n: counted once, for the first such n
                break
    return grams, shares


@dataclass(frozen=True)
class _Block:
    """One vectorizer + TF-IDF branch of the pipeline: its columns are ``offset`` to
    ``offset + width`` of the classifier's; ``dtype`` is the one its features have."""

    vectorizer: Any
    tfidf: TfidfTransformer
    offset: int
    width: int
    hashed: bool
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _Row:
    """One text's features in one block, built from its n-grams.

    Attributes:
        columns: the block's non-zero columns, ascending.
        values: their TF-IDF values, as the model's transform computes them.
        counts: how many of the text's n-grams have each column.
        feature_of: per n-gram, its index in ``columns`` (-1: not a feature of the model).
        shares: per n-gram, the words it covers.
    """

    columns: npt.NDArray[np.int64]
    values: npt.NDArray[np.floating[Any]]
    counts: npt.NDArray[np.int64]
    feature_of: npt.NDArray[np.int64]
    shares: list[Shares]


def _feature_dtype(vec: Any) -> np.dtype[Any] | None:
    """The dtype of the TF-IDF features of ``vec``'s counts (``TfidfTransformer`` keeps
    float32 and float64 and makes integer counts float64); ``None`` for another one."""
    dtype: np.dtype[Any] = np.dtype(vec.dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    return np.dtype(np.float64) if dtype.kind in "iu" else None


def _supported(vec: Any, tfidf: Any) -> str | None:
    """Why the branch ``vec`` + ``tfidf`` cannot be explained, or ``None`` when it can."""
    if not isinstance(vec, HashingVectorizer | CountVectorizer):
        return f"its features come from {type(vec).__name__}"
    if vec.analyzer not in ("word", "char_wb"):
        return f"its {vec.analyzer!r} analyzer is not one aiweb trains"
    if vec.preprocessor is not None or vec.tokenizer is not None or vec.stop_words is not None:
        return "its vectorizer has a custom preprocessor, tokenizer or stop words"
    if vec.strip_accents is not None or vec.input != "content":
        return "its vectorizer strips accents or reads files"
    if isinstance(vec, HashingVectorizer) and vec.alternate_sign:
        return "its hashed features have alternating signs"
    if isinstance(vec, CountVectorizer) and (vec.binary or not hasattr(vec, "vocabulary_")):
        return "its vectorizer is binary or not fitted"
    if _feature_dtype(vec) is None:
        return f"its vectorizer counts in {np.dtype(vec.dtype)}"
    if not isinstance(tfidf, TfidfTransformer) or (tfidf.use_idf and not hasattr(tfidf, "idf_")):
        return f"its features are weighted by {type(tfidf).__name__}, not a fitted TF-IDF"
    return None


def _normalized(
    values: npt.NDArray[np.floating[Any]], columns: npt.NDArray[np.int64], width: int, norm: str
) -> npt.NDArray[np.floating[Any]]:
    """``values`` (one row, not empty) scaled as ``sklearn.preprocessing.normalize``
    scales a CSR row (``norm``: ``l2`` or ``l1``). ``l2`` (aiweb's) is its
    ``inplace_csr_row_normalize_l2`` in numpy, the same operations in the same order:
    squares in the values' dtype, summed one by one in float64, each value divided by the
    float64 root and rounded back."""
    if norm == "l2":
        total = np.cumsum(np.square(values), dtype=np.float64)[-1]
        if total == 0.0:  # scikit-learn leaves such a row as it is
            return values
        return (values / np.float64(math.sqrt(total))).astype(values.dtype)
    row = sparse.csr_matrix((values, columns, [0, len(values)]), shape=(1, width))
    return np.asarray(normalize(row, norm=norm, copy=False).data)


class LinearTextExplainer:
    """Exact per-word contributions of a TF-IDF + LogisticRegression pipeline (the module
    docs give the method).

    The explainer makes each text's n-grams once, with their offsets, and builds the
    model's TF-IDF row from them (the hashing vectorizer's murmurhash3 or the
    vocabulary's column, the vectorizer's counts, then the transformer's sublinear tf,
    idf and norm, in the features' dtype): the same numbers as the pipeline's
    ``transform`` (:meth:`features`), without analysing the text a second time; and the
    probabilities as the classifier's ``predict_proba`` computes them (:meth:`proba`).

    Args:
        classifier: the pipeline aiweb's trainer builds (word and ``char_wb`` n-grams,
            hashed or with a vocabulary, TF-IDF, LogisticRegression).

    Raises:
        InvalidInputError: the pipeline has another shape (422: it cannot be explained).
    """

    method = "linear"
    exact = True

    def __init__(self, classifier: TextClassifier) -> None:
        parts, clf = _unrolled(classifier.pipeline)
        if clf is None or not parts or not isinstance(clf, LogisticRegression):
            raise InvalidInputError(
                "this model cannot be explained: its pipeline is not the TF-IDF + "
                "LogisticRegression pipeline aiweb trains"
            )
        self.labels = classifier.labels
        self.clf = clf
        blocks: list[_Block] = []
        offset = 0
        for vec, tfidf in parts:
            reason = _supported(vec, tfidf)
            if reason is not None:
                raise InvalidInputError(f"this model cannot be explained: {reason}")
            hashed = isinstance(vec, HashingVectorizer)
            width = int(vec.n_features) if hashed else len(vec.vocabulary_)
            dtype = _feature_dtype(vec)
            assert dtype is not None  # _supported refused the others
            blocks.append(_Block(vec, tfidf, offset, width, hashed, dtype))
            offset += width
        if offset != clf.coef_.shape[1]:
            raise InvalidInputError(
                "this model cannot be explained: its features and coefficients differ in size"
            )
        self.blocks = blocks
        self.width = offset

    def features(self, texts: list[str]) -> list[sparse.csr_matrix]:
        """Each branch's TF-IDF rows of ``texts`` (the model's own transform)."""
        return [b.tfidf.transform(b.vectorizer.transform(texts)).tocsr() for b in self.blocks]

    def rows(self, texts: list[str]) -> sparse.csr_matrix:
        """The classifier's input for ``texts`` (every branch's columns side by side),
        built from the explainer's own n-grams: the numbers of
        ``sparse.hstack(features(texts))``."""
        return self._matrix([self._rows(text, _word_index(text)) for text in texts])

    def logits(self, x: sparse.csr_matrix) -> npt.NDArray[np.float64]:
        """``(n, n_classes)`` logits of feature rows, in float64 (scikit-learn's
        ``decision_function`` computes in the features' float32; these are the same
        numbers without that rounding, so that the contributions add up to 1e-6)."""
        intercept = np.asarray(self.clf.intercept_, dtype=np.float64)
        d = np.empty((x.shape[0], intercept.size), dtype=np.float64)
        for i in range(x.shape[0]):  # only the columns of the row's features
            lo, hi = x.indptr[i], x.indptr[i + 1]
            coef = np.asarray(self.clf.coef_[:, x.indices[lo:hi]], dtype=np.float64)
            d[i] = coef @ np.asarray(x.data[lo:hi], dtype=np.float64) + intercept
        return np.concatenate([-d, d], axis=1) if d.shape[1] == 1 else d

    def proba(self, x: sparse.csr_matrix) -> npt.NDArray[np.float64]:
        """``(n, n_classes)`` probabilities of feature rows: the classifier's
        ``predict_proba`` without its input checks
        (:func:`aiweb.classification.model.linear_proba`). The tests hold them equal, to
        the bit, to the pipeline's ``predict_proba``."""
        return linear_proba(self.clf, x)

    def analyze(self, block: _Block, text: str, word_of: npt.NDArray[np.int64]) -> list[str]:
        """The n-grams of ``text`` as ``block``'s vectorizer makes them (for tests: the
        same list as its ``build_analyzer()``)."""
        return self._ngrams(block, text, word_of)[0]

    def _ngrams(
        self, block: _Block, text: str, word_of: npt.NDArray[np.int64]
    ) -> tuple[list[str], list[Shares]]:
        vec = block.vectorizer
        seen = _Text(text, bool(vec.lowercase), word_of)
        if vec.analyzer == "word":
            return _word_ngrams(vec, seen)
        return _char_wb_ngrams(vec, seen)

    def _columns(self, block: _Block, grams: list[str]) -> npt.NDArray[np.int64]:
        """The column of each n-gram in ``block`` (-1: not in the vocabulary). A hashed
        column is ``FeatureHasher``'s: ``|murmurhash3_32(utf-8, seed 0)| mod width``."""
        if block.hashed:
            width = block.width
            hashes = (abs(murmurhash3_32(g, seed=0)) % width for g in grams)
            return np.fromiter(hashes, dtype=np.int64, count=len(grams))
        vocabulary = block.vectorizer.vocabulary_
        return np.fromiter((vocabulary.get(g, -1) for g in grams), dtype=np.int64, count=len(grams))

    def _row(self, block: _Block, text: str, word_of: npt.NDArray[np.int64]) -> _Row:
        """``text``'s features in ``block``: the n-grams counted per column, then the
        vectorizer's and the TF-IDF transformer's steps in their order and dtype."""
        grams, shares = self._ngrams(block, text, word_of)
        columns = self._columns(block, grams)
        known = columns >= 0
        unique, inverse, counts = np.unique(columns[known], return_inverse=True, return_counts=True)
        feature_of = np.full(len(grams), -1, dtype=np.int64)
        feature_of[known] = inverse
        vec, tfidf = block.vectorizer, block.tfidf
        values = counts.astype(block.dtype)
        if vec.binary:
            values.fill(1)
        if block.hashed and vec.norm is not None and values.size:
            values = _normalized(values, unique, block.width, vec.norm)
        if tfidf.sublinear_tf:
            np.log(values, values)
            values += 1.0
        if hasattr(tfidf, "idf_"):
            values *= tfidf.idf_[unique]
        if tfidf.norm is not None and values.size:
            values = _normalized(values, unique, block.width, tfidf.norm)
        return _Row(unique, values, counts, feature_of, shares)

    def _rows(self, text: str, word_of: npt.NDArray[np.int64]) -> list[_Row]:
        return [self._row(block, text, word_of) for block in self.blocks]

    def _matrix(self, rows: list[list[_Row]]) -> sparse.csr_matrix:
        """The CSR matrix of the texts' rows (one list of block rows per text)."""
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indices, data = [], []
        for i, text_rows in enumerate(rows):
            for block, row in zip(self.blocks, text_rows, strict=True):
                indices.append(row.columns + block.offset)
                data.append(row.values)
            indptr[i + 1] = indptr[i] + sum(len(row.columns) for row in text_rows)
        if not data:
            return sparse.csr_matrix((0, self.width), dtype=np.float64)
        return sparse.csr_matrix(
            (np.concatenate(data), np.concatenate(indices), indptr),
            shape=(len(rows), self.width),
        )

    def explain(self, texts: list[str], choose: TargetChooser) -> list[WordWeights]:
        """Explain ``texts``.

        Args:
            texts: the inputs.
            choose: ``choose(proba_row) -> column`` of the class to explain.

        Returns:
            One :class:`WordWeights` per text, aligned by index.
        """
        words = [words_of(text) for text in texts]
        rows = [
            self._rows(text, _word_index(text, spans))
            for text, spans in zip(texts, words, strict=True)
        ]
        x = self._matrix(rows)
        proba = self.proba(x)
        logits = self.logits(x)
        out = []
        for i, text_rows in enumerate(rows):
            target = int(choose(proba[i]))
            row, sign, intercept = _target_row(self.clf, target)
            coef = self.clf.coef_[row]
            weights = np.zeros(len(words[i]), dtype=np.float64)
            for block, features in zip(self.blocks, text_rows, strict=True):
                _attribute(features, coef[block.offset + features.columns], sign, weights)
            out.append(WordWeights(proba[i], logits[i], words[i], weights, target, intercept))
        return out


def _word_index(text: str, words: list[tuple[int, int]] | None = None) -> npt.NDArray[np.int64]:
    """For each character of ``text``, the index of its word (-1: between words)."""
    word_of = np.full(len(text), -1, dtype=np.int64)
    for k, (a, b) in enumerate(words_of(text) if words is None else words):
        word_of[a:b] = k
    return word_of


def _attribute(
    row: _Row,
    coef: npt.NDArray[np.floating[Any]],
    sign: float,
    weights: npt.NDArray[np.float64],
) -> None:
    """Add the terms ``sign · coef · value`` of ``row``'s features to ``weights``: each
    in equal parts to the n-grams that have its column, each n-gram's part to its words
    by their shares. ``coef`` holds the target's coefficients of ``row.columns``."""
    if not row.columns.size:
        return
    terms = sign * np.asarray(coef, dtype=np.float64) * np.asarray(row.values, dtype=np.float64)
    each = (terms / row.counts).tolist()
    for feature, shares in zip(row.feature_of.tolist(), row.shares, strict=True):
        if feature < 0:
            continue
        part = each[feature]
        for w, f in shares:
            weights[w] += part * f


# -- occlusion -------------------------------------------------------------------------


class OcclusionExplainer:
    """Leave-one-word-out weights of any :class:`TextScorer` (the module docs give the
    method): a classifier on sentence-embedding or stacked features, or another runtime.

    Args:
        classifier: the model; when it has ``proba_and_logits(texts)`` (minilm heads) its
            logits are used, else those of its probabilities (:func:`logits_of_proba`).
        max_words: words scored per text (the first ones).
    """

    method = "occlusion"
    exact = False

    def __init__(self, classifier: TextScorer, max_words: int = MAX_OCCLUSION_WORDS) -> None:
        self.classifier = classifier
        self.labels = classifier.labels
        self.max_words = max_words

    @staticmethod
    def variants(text: str, words: Sequence[tuple[int, int]]) -> list[str]:
        """``[text, text without word 0, …, text without every word of words]``."""
        out = [text]
        out.extend(text[:a] + text[b:] for a, b in words)
        kept, last = [], 0
        for a, b in words:
            kept.append(text[last:a])
            last = b
        kept.append(text[last:])
        out.append("".join(kept))
        return out

    def logits(self, texts: list[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(proba, logits)`` of ``texts``, scored in one batch (one embedding call)."""
        if isinstance(self.classifier, _ScoresLogits):
            return self.classifier.proba_and_logits(texts)
        proba = np.asarray(self.classifier.predict_proba(texts), dtype=np.float64)
        return proba, logits_of_proba(proba)

    def explain(self, texts: list[str], choose: TargetChooser) -> list[WordWeights]:
        """Explain ``texts``: every variant of every text is scored in one batch.

        Args:
            texts: the inputs.
            choose: ``choose(proba_row) -> column`` of the class to explain.

        Returns:
            One :class:`WordWeights` per text, aligned by index.
        """
        batch: list[str] = []
        spans: list[tuple[int, list[tuple[int, int]], int]] = []
        for text in texts:
            words = words_of(text)
            scored = words[: self.max_words]
            spans.append((len(batch), scored, len(words) - len(scored)))
            batch.extend(self.variants(text, scored))
        proba, logits = self.logits(batch)
        out = []
        for first, scored, skipped in spans:
            target = int(choose(proba[first]))
            column = logits[first : first + len(scored) + 2, target]
            full = column[0]
            weights = full - column[1 : 1 + len(scored)]
            out.append(
                WordWeights(
                    proba[first],
                    logits[first],
                    list(scored),
                    np.asarray(weights, dtype=np.float64),
                    target,
                    float(column[-1]),
                    skipped,
                )
            )
        return out


Explainer = LinearTextExplainer | OcclusionExplainer


def explainer_for(runtime: object) -> Explainer:
    """The explainer of a served runtime.

    Raises:
        InvalidInputError: a runtime with no explainer (422).
    """
    if isinstance(runtime, DualRuntime):  # onnxruntime serves; explain its sklearn twin
        runtime = runtime.sklearn
    if isinstance(runtime, TextClassifier):
        return LinearTextExplainer(runtime)
    if isinstance(runtime, TextScorer):  # minilm, stacked, any other scorer of texts
        return OcclusionExplainer(runtime)
    raise InvalidInputError(
        f"this model cannot be explained: its runtime ({type(runtime).__name__}) has no explainer"
    )


# -- the service -----------------------------------------------------------------------


def _chooser(labels: list[str], target: str | None, rejection: Rejection | None) -> TargetChooser:
    """``choose(proba_row) -> column``: the requested class, or the answered one (its most
    probable class when the answer is an out-of-scope label that is no class)."""
    if target is not None:
        if target not in labels:
            shown = ", ".join(repr(label) for label in labels[:20])
            more = " …" if len(labels) > 20 else ""
            oos = (
                f" ({target!r} is this version's out-of-scope answer, given below a "
                "probability threshold; it has no logit to explain)"
                if rejection is not None and rejection.label == target
                else ""
            )
            raise InvalidInputError(
                f"target {target[:100]!r} is not a class of this model{oos}; its classes: "
                f"{shown}{more}"
            )
        column = labels.index(target)
        return lambda _row: column

    def answered(row: npt.NDArray[np.float64]) -> int:
        label = decide(labels, row[None, :], rejection)[0]
        return labels.index(label) if label in labels else int(np.argmax(row))

    return answered


def _shape(
    text: str,
    explained: WordWeights,
    explainer: Explainer,
    labels: list[str],
    rejection: Rejection | None,
    top_k: int,
) -> dict[str, Any]:
    """One explanation as the API answers it (``schemas.TextExplanation``)."""
    proba = explained.proba
    label = decide(labels, proba[None, :], rejection)[0]
    weights = explained.weights
    order = sorted(
        (k for k in range(len(weights)) if weights[k] != 0.0),
        key=lambda k: (-abs(weights[k]), explained.words[k][0]),
    )
    shown = order if top_k == 0 else order[:top_k]
    rest = order[len(shown) :]
    contributions = []
    for k in shown:
        a, b = explained.words[k]
        contributions.append({"feature": text[a:b], "start": a, "end": b, "weight": weights[k]})
    out_of_scope = None
    if rejection is not None and label == rejection.label:
        top = float(proba.max())
        out_of_scope = {
            "label": rejection.label,
            "threshold": rejection.threshold,
            "top_score": top,
            "below_threshold": top < rejection.threshold,
        }
    return {
        "label": label,
        "scores": dict(zip(labels, proba.tolist(), strict=True)),
        "target": labels[explained.target],
        "method": explainer.method,
        "exact": explainer.exact,
        "base_value": explained.base_value,
        "contributions": [{**c, "weight": float(c["weight"])} for c in contributions],
        "omitted": {"count": len(rest), "weight": float(sum(weights[k] for k in rest))},
        "logit": float(explained.logits[explained.target]),
        "skipped_words": explained.skipped,
        "out_of_scope": out_of_scope,
    }


class ExplanationService:
    """Serves ``POST /v1/models/{name}/explain`` for text classifiers.

    Explanations use the served version (the loader's, as predictions do) but neither
    its micro-batcher nor the prediction cache or log: they run on a worker thread,
    only when asked.

    Args:
        loader: the loaded models.
        settings: the request limits (``serving.max_inputs``, ``serving.max_text_chars``).
    """

    def __init__(self, loader: ModelLoader, settings: Settings) -> None:
        self.loader = loader
        self.settings = settings

    def check_inputs(self, inputs: list[str]) -> None:
        """The predict limits, and at most :data:`MAX_EXPLAIN_INPUTS` texts.

        Raises:
            PayloadTooLargeError: too many texts (413).
            InvalidInputError: no text, or a text over ``serving.max_text_chars`` (422).
        """
        limits = self.settings.serving
        most = min(limits.max_inputs, MAX_EXPLAIN_INPUTS)
        if not inputs:
            raise InvalidInputError("inputs must hold at least one text")
        if len(inputs) > most:
            raise PayloadTooLargeError(
                f"{len(inputs)} inputs in one explain request; the limit is {most}"
            )
        for i, text in enumerate(inputs):
            if len(text) > limits.max_text_chars:
                raise InvalidInputError(
                    f"inputs[{i}] has {len(text)} characters; the limit is "
                    f"{limits.max_text_chars} (AIWEB_SERVING__MAX_TEXT_CHARS)"
                )

    async def explain(self, ref: str, body: ExplainRequest) -> dict[str, Any]:
        """Explain the answers of the model ``ref`` names to ``body.inputs``.

        Args:
            ref: ``name``, ``name@alias`` or ``name:version``.
            body: the inputs, the target class (``None``: each input's answered class)
                and ``top_k``.

        Returns:
            ``{"model", "version", "explanations": [...]}``, shaped as
            :class:`~aiweb.classification.schemas.ExplainResponse`; explanations align
            with ``body.inputs`` by index.

        Raises:
            InvalidInputError: see :meth:`check_inputs`; a ``target`` that is not a class
                of the model; a model that cannot be explained (422).
            PayloadTooLargeError: too many inputs (413).
            ModelNotFound, AliasNotFound, ModelVersionNotFound: unknown reference (404).
            ModelNotReadyError: the version cannot be loaded (503).
        """
        self.check_inputs(body.inputs)
        model = await self.loader.get(ModelRef.parse(ref))
        MODEL.set(model.version.name)
        VERSION.set(model.version.version)
        return await anyio.to_thread.run_sync(self._explain, model, body)

    def _explain(self, model: LoadedModel, body: ExplainRequest) -> dict[str, Any]:
        explainer = explainer_for(model.runtime)
        labels = list(explainer.labels)
        choose = _chooser(labels, body.target, model.rejection)
        explained = explainer.explain(list(body.inputs), choose)
        explanations = [
            _shape(text, e, explainer, labels, model.rejection, body.top_k)
            for text, e in zip(body.inputs, explained, strict=True)
        ]
        return {
            "model": model.version.name,
            "version": model.version.version,
            "explanations": explanations,
        }
