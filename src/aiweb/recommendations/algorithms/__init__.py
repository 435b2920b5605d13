"""Recommendation algorithms: one interface, scikit-learn conventions.

Every algorithm is fitted on a float32 CSR user-item matrix ``X`` of shape
``(n_users, n_items)`` (1.0 where a user interacted with an item, see
:mod:`aiweb.recommendations.data`) and scores items for a batch of users from their rows::

    scores = algo.score(users, rows)   # float32 (len(users), n_items), higher is better

``users`` holds the users' row indices in ``X`` (``-1`` for a user unknown at fit time)
and ``rows`` their interactions now, a CSR ``(len(users), n_items)`` whose values are
recency weights in (0, 1] (1.0 for the most recent; :func:`recency_rows`). Item-based
algorithms score from ``rows`` alone, so a new interaction changes the result at once,
without refitting; ALS folds a user's current rows in (Hu et al. 2008, eq. 4).

Serving scores one user per request, so every algorithm also has a single-user path with
the same results (up to float32 summation order) and no sparse-matrix construction::

    scores = algo.score_user(user, items, weights)   # float32 (n_items,)

``items`` are the user's item indices and ``weights`` their recency weights (the nonzeros
of one row of ``rows``). EASE and content leave out the items whose weight is below
:data:`MIN_RELATIVE_WEIGHT` times the largest weight among the items that count (those in
``B``, those with text): they change no float32 score, and a user with thousands of
interactions then costs no more than one with a hundred (with a recency half-life of 3,
73 items count).

Parameters are checked by :func:`make` against each class's ``RANGES`` (finite values
in documented ranges); the fits that allocate most (ALS, BPR, EASE) estimate their memory
first and refuse above :data:`~aiweb.recommendations.algorithms.base.FIT_MEMORY_FRACTION`
of the memory available (:func:`~aiweb.recommendations.algorithms.base.check_fit_memory`),
and the iterative ones report progress between iterations
(:func:`~aiweb.recommendations.algorithms.base.fit_progress`), which is where a cancelled
job stops them.

Learned state ends in ``_``; :meth:`Algorithm.state` / :meth:`Algorithm.from_state` move it
to and from plain numpy arrays (stored with :func:`numpy.savez`, loaded with
``allow_pickle=False``: no pickled objects ever).

The families live in submodules, every public name re-exported here:
:mod:`~aiweb.recommendations.algorithms.base` (the :class:`Algorithm` protocol, recency
weighting, :func:`standardize`), :mod:`~aiweb.recommendations.algorithms.popularity`
(Popularity, Trending), :mod:`~aiweb.recommendations.algorithms.factors` (ALS, BPR),
:mod:`~aiweb.recommendations.algorithms.ease`,
:mod:`~aiweb.recommendations.algorithms.content` (Content, EmbeddingContent) and
:mod:`~aiweb.recommendations.algorithms.catalog` (:func:`make`, :func:`from_state`).

Sources:

- ALS: Y. Hu, Y. Koren, C. Volinsky, "Collaborative Filtering for Implicit Feedback
  Datasets", ICDM 2008 — fitted by :class:`implicit.cpu.als.AlternatingLeastSquares`
  (conjugate gradient, Takács et al. 2011), confidence ``1 + alpha * x``.
- BPR: S. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback",
  UAI 2009 — :class:`implicit.cpu.bpr.BayesianPersonalizedRanking`.
- EASE: H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019,
  closed form ``B = I - P diag(1/diag(P))``, ``P = (XᵀX + λI)⁻¹`` (numpy / LAPACK).
- Content: TF-IDF (scikit-learn :class:`~sklearn.feature_extraction.text.TfidfVectorizer`)
  over title, text, categories and tags; a user's profile is the recency-weighted sum of
  the L2-normalised vectors of their items, scored by cosine (Pazzani & Billsus, "Content-
  Based Recommendation Systems", The Adaptive Web, 2007).
- Content (sentence embeddings, ``content-minilm``): the same profile and cosine over the
  all-MiniLM-L6-v2 embeddings of the items' documents (Reimers & Gurevych,
  "Sentence-BERT", EMNLP 2019), computed at training by the registered embedding model.
- Popularity: number of users per item. Trending: the same count with each interaction
  decayed exponentially by its age (half-life ``half_life_days``).
"""

from aiweb.errors import NotFittedError
from aiweb.recommendations.algorithms.base import (
    F32,
    I32,
    MIN_RELATIVE_WEIGHT,
    Algorithm,
    State,
    recency_rows,
    recency_weights,
    standardize,
)
from aiweb.recommendations.algorithms.catalog import ALGORITHMS, CLASSES, from_state, make
from aiweb.recommendations.algorithms.content import Content, EmbeddingContent, item_document
from aiweb.recommendations.algorithms.ease import EASE
from aiweb.recommendations.algorithms.factors import ALS, BPR
from aiweb.recommendations.algorithms.popularity import Popularity, Trending

__all__ = [
    "ALGORITHMS",
    "ALS",
    "BPR",
    "CLASSES",
    "EASE",
    "F32",
    "I32",
    "MIN_RELATIVE_WEIGHT",
    "Algorithm",
    "Content",
    "EmbeddingContent",
    "NotFittedError",
    "Popularity",
    "State",
    "Trending",
    "base",
    "catalog",
    "content",
    "ease",
    "factors",
    "from_state",
    "item_document",
    "make",
    "popularity",
    "recency_rows",
    "recency_weights",
    "standardize",
]
