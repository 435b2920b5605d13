"""Content-based: :class:`Content` (TF-IDF) and :class:`EmbeddingContent` (sentence
embeddings) over :func:`item_document`, a user's profile scored by cosine.

Sources:

- Content: TF-IDF (scikit-learn :class:`~sklearn.feature_extraction.text.TfidfVectorizer`)
  over title, text, categories and tags; a user's profile is the recency-weighted sum of
  the L2-normalised vectors of their items, scored by cosine (Pazzani & Billsus, "Content-
  Based Recommendation Systems", The Adaptive Web, 2007).
- Content (sentence embeddings, ``content-minilm``): the same profile and cosine over the
  all-MiniLM-L6-v2 embeddings of the items' documents (Reimers & Gurevych,
  "Sentence-BERT", EMNLP 2019), computed at training by the registered embedding model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb.errors import InvalidInputError, UnsafeArtifactError
from aiweb.recommendations.algorithms.base import F32, I32, Range, State, _check, _heavy
from aiweb.recommendations.data import Interactions, ItemText


def item_document(text: ItemText) -> str:
    """The text TF-IDF reads for an item: title, text, categories and tags, joined."""
    return " ".join((text.title, text.text, *text.categories, *text.tags))


class Content:
    """Content-based: TF-IDF (scikit-learn, word 1-2-grams, sublinear tf) over
    :func:`item_document`, L2-normalised; a user's score for item ``i`` is the cosine of
    ``i`` with the recency-weighted sum of their items' vectors.

    Args:
        min_df: a term must occur in this many items.
        max_features: vocabulary size cap.

    Attributes:
        vectors_: float32 CSR ``(n_items, n_terms)``, rows L2-normalised (all zero for an
            item without text).
    """

    name: ClassVar[str] = "content"
    #: valid parameter values (checked by :func:`~aiweb.recommendations.algorithms.make`)
    RANGES: ClassVar[dict[str, Range]] = {
        "min_df": Range(1, 1e9, integer=True),
        "max_features": Range(1, 1_000_000, integer=True),
    }

    def __init__(self, min_df: int = 2, max_features: int = 50_000) -> None:
        self.min_df = min_df
        self.max_features = max_features
        self.vectors_: sparse.csr_matrix | None = None

    def fit(self, data: Interactions, texts: list[ItemText]) -> Content:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if len(texts) != data.n_items:
            raise InvalidInputError(f"{len(texts)} item texts for {data.n_items} items")
        docs = [item_document(t) for t in texts]
        vectorizer = TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=min(self.min_df, max(1, len(docs))),
            max_features=self.max_features,
            sublinear_tf=True,
            dtype=np.float32,
        )
        try:
            vectors = vectorizer.fit_transform(docs)
        except ValueError:  # no item has any text: an empty vocabulary
            vectors = sparse.csr_matrix((len(docs), 1), dtype=np.float32)
        self.vectors_ = sparse.csr_matrix(vectors, dtype=np.float32)
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        profile = rows @ self.vectors_
        return np.asarray((profile @ self.vectors_.T).toarray(), dtype=np.float32)

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """One user's scores: their dense profile ``weights · V[items]`` (float32
        ``(n_terms,)``) times every item's vector (one sparse matrix-vector product; items
        weighted below :data:`MIN_RELATIVE_WEIGHT` times the heaviest item with text left
        out)."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        v = self.vectors_
        starts = v.indptr[items]
        lengths = v.indptr[items + 1] - starts
        with_text = lengths > 0
        if not with_text.any():
            return np.zeros(v.shape[0], dtype=np.float32)
        if not with_text.all():
            starts, lengths, weights = starts[with_text], lengths[with_text], weights[with_text]
        heavy = _heavy(weights)
        if heavy is not None:
            starts, lengths, weights = starts[heavy], lengths[heavy], weights[heavy]
        # the profile from the items' nonzeros, gathered through indptr (what v[items].T @
        # weights computes, without building a sparse matrix)
        ends = np.cumsum(lengths)
        nonzeros = np.arange(int(ends[-1])) + np.repeat(starts - (ends - lengths), lengths)
        profile = np.bincount(
            v.indices[nonzeros],
            v.data[nonzeros] * np.repeat(weights, lengths),
            minlength=v.shape[1],
        ).astype(np.float32)
        return np.asarray(v @ profile, dtype=np.float32)

    def similar(self, item: int) -> F32:
        """Cosine of item ``item`` with every item: float32 ``(n_items,)``."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        return np.asarray((self.vectors_ @ self.vectors_[item].T).toarray()).ravel()

    def params(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "max_features": self.max_features}

    def state(self) -> State:
        assert self.vectors_ is not None
        v = self.vectors_
        return {
            "data": v.data,
            "indices": v.indices,
            "indptr": v.indptr,
            "shape": np.asarray(v.shape, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> Content:
        algo = cls(**params)
        shape = tuple(int(x) for x in state["shape"])
        algo.vectors_ = sparse.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=shape, dtype=np.float32
        )
        return algo


class EmbeddingContent:
    """Content-based on sentence embeddings (``content-minilm``): each item is the
    embedding of :func:`item_document` that training attached to its
    :class:`~aiweb.recommendations.data.ItemText` (all-MiniLM-L6-v2 by default, float32,
    L2-normalised); a user's score for item ``i`` is the cosine of ``i`` with the
    recency-weighted sum of their items' vectors, as :class:`Content` does with TF-IDF.
    The vectors are kept in the artifact, so serving needs no embedding model.

    Attributes:
        vectors_: float32 ``(n_items, dim)``, rows L2-normalised (zero for an item
            without text).
    """

    name: ClassVar[str] = "content-minilm"

    def __init__(self) -> None:
        self.vectors_: F32 | None = None

    def fit(self, data: Interactions, texts: list[ItemText]) -> EmbeddingContent:
        """Stack the items' embeddings.

        Raises:
            InvalidInputError: a text count other than ``data.n_items``, or items without
                an embedding (training attaches them when an embedding model is installed).
        """
        if len(texts) != data.n_items:
            raise InvalidInputError(f"{len(texts)} item texts for {data.n_items} items")
        if any(t.embedding is None for t in texts):
            raise InvalidInputError(
                "content-minilm needs the items' sentence embeddings, and no embedding model "
                "is installed: run `aiweb embeddings install`"
            )
        vectors = np.stack([t.embedding for t in texts if t.embedding is not None])
        self.vectors_ = np.ascontiguousarray(vectors, dtype=np.float32)
        return self

    def score(self, users: npt.NDArray[np.int32], rows: sparse.csr_matrix) -> F32:
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        profile = np.asarray(rows @ self.vectors_, dtype=np.float32)
        return np.asarray(profile @ self.vectors_.T, dtype=np.float32)

    def score_user(self, user: int, items: I32, weights: F32) -> F32:
        """One user's scores: their profile ``weights · V[items]`` (float32 ``(dim,)``;
        items weighted below :data:`MIN_RELATIVE_WEIGHT` times the heaviest left out)
        times every item's vector."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        v = self.vectors_
        if len(items) == 0:
            return np.zeros(v.shape[0], dtype=np.float32)
        heavy = _heavy(weights)
        if heavy is not None:
            items, weights = items[heavy], weights[heavy]
        profile = weights.astype(np.float32) @ v[items]
        return np.asarray(v @ profile, dtype=np.float32)

    def similar(self, item: int) -> F32:
        """Cosine of item ``item`` with every item: float32 ``(n_items,)``."""
        _check(self.vectors_, self.name)
        assert self.vectors_ is not None
        return np.asarray(self.vectors_ @ self.vectors_[item], dtype=np.float32)

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> State:
        assert self.vectors_ is not None
        return {"vectors": self.vectors_}

    @classmethod
    def from_state(cls, params: dict[str, Any], state: State) -> EmbeddingContent:
        algo = cls(**params)
        vectors = state["vectors"]
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise UnsafeArtifactError("content-minilm state: vectors must be float32 (n, dim)")
        algo.vectors_ = vectors
        return algo
