"""Train, compare and register a recommender (``aiweb train recommendation NAME``).

The offline protocol (the issue's, stored in every version's report):

1. every user's distinct items are sorted by time; the last ``n_test`` (5) are the
   **test** set and the rest the training set (users with 5 items or fewer are only
   trained on); every interaction counts as a positive, whatever its type;
2. the same cut applied to the training set gives a **validation** set: algorithms are
   fitted on what is left, their recency half-life (the weight of older items in the
   rows they score from) and the hybrid's blend weights are chosen on it, and ``auto``
   picks the algorithm (or hybrid) with the best validation NDCG@10;
3. each algorithm is refitted on the whole training set and scored on the test set:
   Precision/Recall/NDCG/MAP/HitRate@10 and catalogue coverage, side by side with the
   popularity baseline (:mod:`aiweb.recommendations.evaluation`);
4. the chosen algorithm is refitted on all interactions and registered.

With too little data to hold out validation and test sets (no user with
:func:`min_items_to_evaluate` distinct items, 11), a version is trained all the same, on
every interaction, without an evaluation: its report says so (``"evaluated": false``,
``"reason"``, metrics ``null``), ``auto`` and ``hybrid`` train the popularity baseline
(choosing needs the validation set), and it is registered without moving ``production``
unless the caller names the alias (:func:`train_recommendation`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from aiweb import __version__
from aiweb.embeddings.features import EmbeddingRef, embed_texts
from aiweb.embeddings.runtime import EmbedderPool
from aiweb.errors import EmbeddingModelNotInstalled, InvalidInputError
from aiweb.recommendations import algorithms as algos
from aiweb.recommendations.algorithms import Algorithm, Content, Popularity, Trending
from aiweb.recommendations.algorithms.base import fit_progress
from aiweb.recommendations.data import Interactions, ItemText, leave_last_out
from aiweb.recommendations.evaluation import EvalSet, ScoreFn, evaluate_scores
from aiweb.recommendations.model import ARTIFACT_FORMAT, Component, RecommenderModel
from aiweb.recommendations.store import RecommendationStore, TrainingRows
from aiweb.registry.entities import PRODUCTION, ModelVersion
from aiweb.registry.promotion import non_finite_as_null, non_finite_metrics
from aiweb.registry.service import RegistryService

TASK = "recommendation"
#: what ``--algorithm`` accepts
CHOICES = ("auto", "hybrid", "als", "bpr", "ease", "content", "content-minilm", "popularity")
#: algorithms ``auto`` compares (trending is evaluated too, but serves only cold starts);
#: ``content-minilm`` joins them when an embedding model is installed
COMPARED = ("als", "bpr", "ease", "content", "popularity", "trending")
HYBRID_PARTS = ("als", "bpr", "ease", "content", "content-minilm", "popularity")
#: the algorithm that reads the items' sentence embeddings
EMBEDDING_CONTENT = algos.EmbeddingContent.name
#: recency half-lives tried on validation by algorithms that score from a user's rows
HALF_LIVES = (3.0, 10.0, math.inf)
ROW_BASED = ("ease", "content", "content-minilm")
BLEND_WEIGHTS = (0.1, 0.25, 0.5, 1.0)
K = 10
#: most validation users the hybrid search holds score matrices for
MAX_BLEND_USERS = 2000
#: test metrics of the selected algorithm a report holds at its top level
TOP_LEVEL_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")

Progress = Callable[[str, float], None]


def min_items_to_evaluate(n_test: int = 5) -> int:
    """Distinct items one user needs for the offline evaluation to run: ``n_test`` held
    out for test, the ``n_test`` before them for validation, and one to fit on."""
    return 2 * n_test + 1


def not_evaluated_reason(data: Interactions, n_test: int = 5) -> str | None:
    """Why ``data`` is too small for the offline evaluation, or ``None`` when it is not.

    The evaluation needs a user with at least :func:`min_items_to_evaluate` distinct
    items (validation and test sets are cut from each user's latest interactions).

    Returns:
        ``"not evaluated: too few interactions; 11 needed (…)"``, or ``None``.
    """
    needed = min_items_to_evaluate(n_test)
    most = int(np.bincount(data.users, minlength=data.n_users).max()) if len(data) else 0
    if most >= needed:
        return None
    return (
        f"not evaluated: too few interactions; {needed} needed (one user with {needed} "
        f"distinct items: the last {n_test} are held out for test and the {n_test} before "
        f"them for validation; the most any user has is {most})"
    )


@dataclass(frozen=True)
class RecommendationData:
    """Interactions and item texts to train on.

    Attributes:
        name: where they come from (``store``, ``movielens_latest_small``).
        interactions: distinct positives (see :class:`Interactions`).
        texts: one :class:`ItemText` per item index.
        last_interaction_id: highest interaction log id included (0 when not from a store).
        sha256: digest of the interactions, recorded in the lineage.
        embedding_model: ``{"name", "version", "sha256", "dim"}`` of the embedding model
            version whose item embeddings ``texts`` carry (:func:`with_item_embeddings`),
            else ``None``.
    """

    name: str
    interactions: Interactions
    texts: list[ItemText]
    last_interaction_id: int
    sha256: str
    embedding_model: dict[str, Any] | None = None

    @classmethod
    def from_rows(cls, rows: TrainingRows, name: str = "store") -> RecommendationData:
        """Build from :meth:`RecommendationStore.training_rows`.

        Raises:
            InvalidInputError: no interactions.
        """
        if not rows.user_ids:
            raise InvalidInputError(
                "there are no interactions to train on: POST /v1/interactions or "
                "`aiweb import interactions FILE` first"
            )
        interactions = Interactions.build(
            rows.user_ids, rows.item_ids, rows.times, catalogue=[i.item_id for i in rows.items]
        )
        by_id = {
            i.item_id: ItemText(i.title, i.text, tuple(i.categories), tuple(i.tags))
            for i in rows.items
        }
        texts = [by_id.get(item, ItemText()) for item in interactions.item_ids]
        digest = hashlib.sha256()
        digest.update(interactions.users.tobytes())
        digest.update(interactions.items.tobytes())
        digest.update(interactions.times.tobytes())
        digest.update("\n".join(interactions.item_ids).encode("utf-8"))
        return cls(name, interactions, texts, rows.last_id, digest.hexdigest())

    @classmethod
    def from_store(cls, store: RecommendationStore) -> RecommendationData:
        """Everything in the store. Raises InvalidInputError when it holds no interactions."""
        return cls.from_rows(store.training_rows())


@dataclass
class Candidate:
    """An algorithm under comparison: its settings and its validation/test results."""

    name: str
    half_life: float = math.inf
    validation: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)  # hybrid only


@dataclass
class Comparison:
    """The outcome of :func:`compare`: results per algorithm and the choice."""

    candidates: dict[str, Candidate]
    selected: str
    report: dict[str, Any]

    def select(self, name: str) -> None:
        """Make ``name`` the choice, in the report too (its test metrics at the top level,
        where promotion rules read them)."""
        self.selected = name
        self.report["selected"] = name
        chosen = self.candidates[name]
        for metric in (*TOP_LEVEL_METRICS, "coverage"):
            self.report[metric] = chosen.test.get(metric)


def compared(
    algorithm: str, data: RecommendationData | None = None
) -> tuple[tuple[str, ...], bool]:
    """What :func:`compare` runs for ``--algorithm``: ``(names, hybrid)``. ``auto`` and
    ``hybrid`` compare every algorithm (``content-minilm`` too when ``data`` carries item
    embeddings) and search a blend; a named one is compared with the popularity baseline
    only."""
    if algorithm in ("auto", "hybrid"):
        if data is not None and data.embedding_model is not None:
            return (*COMPARED, EMBEDDING_CONTENT), True
        return COMPARED, True
    return (algorithm,), False


def with_item_embeddings(
    registry: RegistryService,
    data: RecommendationData,
    algorithm: str,
    *,
    progress: Progress | None = None,
) -> RecommendationData:
    """``data`` ready to train ``algorithm``: with every item's sentence embedding attached
    (:attr:`ItemText.embedding`) when it uses them, i.e. ``content-minilm``, or
    ``auto``/``hybrid``, which compare it when an embedding model is installed. They are
    computed by the embedding model's production version (``minilm@production``) over
    :func:`~aiweb.recommendations.algorithms.item_document`; items without text get a zero
    vector. Other algorithms, and data that has them already, get ``data`` as it is.

    Args:
        progress: ``(stage, fraction)`` while embedding.

    Raises:
        EmbeddingModelNotInstalled: ``algorithm`` is ``content-minilm`` and ``aiweb
            embeddings install`` never ran (for ``auto``/``hybrid``: ``data`` unchanged).
    """
    if data.embedding_model is not None or algorithm not in ("auto", "hybrid", EMBEDDING_CONTENT):
        return data
    pool = EmbedderPool(registry)
    try:
        version = pool.resolve(None)
    except EmbeddingModelNotInstalled:
        if algorithm == EMBEDDING_CONTENT:
            raise
        return data
    embedder = pool.get(version)
    docs = [algos.item_document(t).strip() for t in data.texts]
    vectors = np.zeros((len(docs), embedder.dim), dtype=np.float32)
    with_text = [i for i, doc in enumerate(docs) if doc]
    if with_text:
        vectors[with_text] = embed_texts(
            embedder, [docs[i] for i in with_text], progress=progress, stage="embedding items"
        )
    texts = [replace(t, embedding=vectors[i]) for i, t in enumerate(data.texts)]
    ref = EmbeddingRef.of(version, embedder.dim).to_json()
    return replace(data, texts=texts, embedding_model=ref)


def _eval_set(train: Interactions, heldout: Interactions) -> EvalSet:
    users = np.unique(heldout.users).astype(np.int32)
    relevant: list[set[int]] = [set() for _ in users]
    position = {int(u): j for j, u in enumerate(users)}
    for u, i in zip(heldout.users.tolist(), heldout.items.tolist(), strict=True):
        relevant[position[u]].add(i)
    seen = train.matrix()[users]
    return EvalSet(users=users, rows=seen, seen=seen, relevant=relevant)


def _scorer(parts: list[tuple[Algorithm, float, float]], train: Interactions) -> ScoreFn:
    """``score(users, rows)`` of a blend of ``(algorithm, weight, half_life)``; each part
    scores from ``train``'s rows of the users at its own half-life."""

    def score(users: npt.NDArray[np.int32], _rows: sparse.csr_matrix) -> npt.NDArray[np.float32]:
        if len(parts) == 1:
            algo, _w, hl = parts[0]
            return algo.score(users, algos.recency_rows(train, users, hl))
        total = np.zeros((len(users), train.n_items), dtype=np.float32)
        for algo, weight, hl in parts:
            rows = algos.recency_rows(train, users, hl)
            total += weight * algos.standardize(algo.score(users, rows))
        return total

    return score


def _fit(
    name: str,
    data: Interactions,
    texts: list[ItemText],
    params: dict[str, Any],
    progress: Callable[[float], None] | None = None,
) -> Algorithm:
    """``name`` made with its ``params`` (checked) and fitted; iterative fits call
    ``progress(fraction)`` between iterations (an exception it raises stops the fit)."""
    algo = algos.make(name, params.get(name))
    with fit_progress(progress):
        return algo.fit(data, texts)


def check_params(params: dict[str, Any] | None) -> None:
    """Check per-algorithm parameters before any data is loaded: known algorithms, each
    a JSON object of parameters in their ranges (:func:`~aiweb.recommendations.
    algorithms.make`).

    Raises:
        InvalidInputError: what is wrong, with the valid range.
    """
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidInputError("params must be an object of algorithm: {parameter: value}")
    for name, values in params.items():
        algos.make(name, values)


def _within(progress: Progress, stage: str, done: int, steps: int) -> Callable[[float], None]:
    """A fit's ``progress(fraction)`` as ``progress(stage, (done + fraction) / steps)``."""
    return lambda fraction: progress(stage, (done + fraction) / steps)


def compare(
    data: RecommendationData,
    names: tuple[str, ...],
    *,
    hybrid: bool,
    params: dict[str, dict[str, Any]] | None = None,
    n_test: int = 5,
    progress: Progress | None = None,
) -> Comparison:
    """Run the protocol of the module docstring for ``names`` (and the hybrid).

    Args:
        data: the interactions and item texts.
        names: algorithms to compare (``popularity`` is always added as the baseline).
        hybrid: also search a blend of ``HYBRID_PARTS`` among ``names``.
        params: per algorithm, constructor parameters (e.g. ``{"ease": {"l2": 300}}``).
        n_test: interactions held out per user, for test and for validation.
        progress: ``(stage, fraction)`` callback.

    Returns:
        The results; ``selected`` is the best on validation NDCG@10. With ``hybrid``, an
        algorithm that cannot be fitted on this data (EASE without items shared by two
        users, say) is left out and named in the report's ``skipped``.

    Raises:
        InvalidInputError: no user has :func:`min_items_to_evaluate` distinct items
            (:func:`not_evaluated_reason`), or (without ``hybrid``) the algorithm cannot
            be fitted on this data.
    """
    report_progress = progress or (lambda _s, _f: None)
    params = params or {}
    names = tuple(dict.fromkeys((*names, "popularity")))
    full = data.interactions
    reason = not_evaluated_reason(full, n_test)
    if reason is not None:
        raise InvalidInputError(reason)
    test_mask = leave_last_out(full, n_test)
    train = full.subset(~test_mask)
    val_mask = leave_last_out(train, n_test)
    fit = train.subset(~val_mask)
    val_set = _eval_set(fit, train.subset(val_mask))
    test_set = _eval_set(train, full.subset(test_mask))
    steps = 2 * len(names) + 2
    done = 0

    candidates: dict[str, Candidate] = {}
    val_models: dict[str, Algorithm] = {}
    skipped: dict[str, str] = {}
    for name in names:
        stage = f"validation: fitting {name}"
        report_progress(stage, done / steps)
        started = time.perf_counter()
        try:
            algo = _fit(name, fit, data.texts, params, _within(report_progress, stage, done, steps))
        except InvalidInputError as exc:
            if not hybrid or name == "popularity":
                raise  # the algorithm asked for cannot be fitted on this data: 422
            skipped[name] = exc.detail  # auto compares the others
            continue
        seconds = time.perf_counter() - started
        best: Candidate | None = None
        for hl in HALF_LIVES if name in ROW_BASED else (math.inf,):
            metrics = evaluate_scores(_scorer([(algo, 1.0, hl)], fit), val_set, full.n_items, K)
            if best is None or metrics["ndcg"] > best.validation["ndcg"]:
                best = Candidate(name, hl, metrics, fit_seconds=seconds)
        assert best is not None
        candidates[name] = best
        val_models[name] = algo
        done += 1

    blend: list[tuple[str, float]] = []
    if hybrid:
        report_progress("validation: blending", done / steps)
        blend = _search_blend(candidates, val_models, fit, val_set, full.n_items)
        if len(blend) > 1:
            weights = dict(blend)
            parts = [(val_models[n], w, candidates[n].half_life) for n, w in blend]
            candidates["hybrid"] = Candidate(
                "hybrid",
                validation=evaluate_scores(_scorer(parts, fit), val_set, full.n_items, K),
                weights=weights,
            )
    done += 1

    names = tuple(n for n in names if n not in skipped)
    test_models: dict[str, Algorithm] = {}
    for name in names:
        stage = f"test: fitting {name}"
        report_progress(stage, done / steps)
        started = time.perf_counter()
        try:
            algo = _fit(
                name, train, data.texts, params, _within(report_progress, stage, done, steps)
            )
        except InvalidInputError as exc:  # more data than validation's: a limit reached
            if not hybrid or name == "popularity":
                raise
            skipped[name] = exc.detail
            del candidates[name]
            if name in candidates.get("hybrid", Candidate("hybrid")).weights:
                del candidates["hybrid"]
                skipped["hybrid"] = f"its part {name} could not be fitted"
            done += 1
            continue
        candidates[name].fit_seconds += time.perf_counter() - started
        test_models[name] = algo
        scorer = _scorer([(algo, 1.0, candidates[name].half_life)], train)
        candidates[name].test = evaluate_scores(scorer, test_set, full.n_items, K)
        done += 1
    if "hybrid" in candidates:
        h = candidates["hybrid"]
        parts = [(test_models[n], w, candidates[n].half_life) for n, w in h.weights.items()]
        h.test = evaluate_scores(_scorer(parts, train), test_set, full.n_items, K)
        h.fit_seconds = sum(candidates[n].fit_seconds for n in h.weights)
    selectable = [c for c in candidates.values() if c.name != "trending"]
    selected = max(selectable, key=lambda c: c.validation["ndcg"]).name
    report = _report(candidates, selected, full, train, val_set, test_set, n_test)
    if skipped:
        report["skipped"] = skipped
    return Comparison(candidates, selected, report)


def evaluate_recipe(
    data: RecommendationData,
    components: list[dict[str, Any]],
    *,
    n_test: int = 5,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Test metrics of a fixed recipe under the protocol of the module docstring, on
    ``data``'s test split (the one :func:`compare` makes of the same data): every component
    refitted on the training part, blended as recorded.

    What a promotion rule compares a new version with: the production version's recipe
    on the new version's split (its artifact saw every interaction, held-out ones too).

    Args:
        data: the interactions and item texts.
        components: ``[{"algorithm", "params", "weight", "half_life"}]`` as a version's
            lineage records them (``half_life`` ``None`` for infinite).
        n_test: interactions held out per user.
        progress: ``(stage, fraction)`` callback.

    Returns:
        ``{"precision", "recall", "ndcg", "map", "hit_rate", "coverage"}`` at 10.

    Raises:
        InvalidInputError: an unknown algorithm or parameter, no components, or too few
            interactions.
    """
    if not components:
        raise InvalidInputError("a recipe needs at least one component")
    report_progress = progress or (lambda _s, _f: None)
    full = data.interactions
    test_mask = leave_last_out(full, n_test)
    if not test_mask.any():
        raise InvalidInputError(
            f"not evaluated: too few interactions; {n_test + 1} needed (one user with "
            f"{n_test + 1} distinct items: the last {n_test} are held out for test)"
        )
    train = full.subset(~test_mask)
    test_set = _eval_set(train, full.subset(test_mask))
    parts: list[tuple[Algorithm, float, float]] = []
    for i, c in enumerate(components):
        stage = f"fitting {c['algorithm']}"
        report_progress(stage, i / len(components))
        name = str(c["algorithm"])
        algo = _fit(
            name,
            train,
            data.texts,
            {name: dict(c.get("params") or {})},
            _within(report_progress, stage, i, len(components)),
        )
        half_life = c.get("half_life")
        parts.append(
            (algo, float(c.get("weight", 1.0)), math.inf if half_life is None else half_life)
        )
    report_progress("scoring", 1.0)
    return evaluate_scores(_scorer(parts, train), test_set, full.n_items, K)


def _search_blend(
    candidates: dict[str, Candidate],
    models: dict[str, Algorithm],
    fit: Interactions,
    val_set: EvalSet,
    n_items: int,
) -> list[tuple[str, float]]:
    """Greedy forward selection of blend weights on validation NDCG@10: start from the
    best single algorithm, add the one (and weight from ``BLEND_WEIGHTS``) that improves
    most, until nothing does."""
    names = [n for n in HYBRID_PARTS if n in candidates]
    if len(names) < 2:
        return []
    sample = EvalSet(
        users=val_set.users[:MAX_BLEND_USERS],
        rows=val_set.rows[:MAX_BLEND_USERS],
        seen=val_set.seen[:MAX_BLEND_USERS],
        relevant=val_set.relevant[:MAX_BLEND_USERS],
    )
    cached: dict[str, npt.NDArray[np.float32]] = {}
    for n in names:
        rows = algos.recency_rows(fit, sample.users, candidates[n].half_life)
        cached[n] = algos.standardize(models[n].score(sample.users, rows))

    def ndcg(blend: list[tuple[str, float]]) -> float:
        total = sum(w * cached[n] for n, w in blend)
        return evaluate_scores(lambda _u, _r: np.array(total), sample, n_items, K)["ndcg"]

    first = max(names, key=lambda n: candidates[n].validation["ndcg"])
    blend = [(first, 1.0)]
    best = ndcg(blend)
    while True:
        trial = None
        for n in names:
            if n in dict(blend):
                continue
            for w in BLEND_WEIGHTS:
                value = ndcg([*blend, (n, w)])
                if value > best + 1e-4 and (trial is None or value > trial[0]):
                    trial = (value, n, w)
        if trial is None:
            return blend
        best = trial[0]
        blend.append((trial[1], trial[2]))


def _report(
    candidates: dict[str, Candidate],
    selected: str,
    full: Interactions,
    train: Interactions,
    val_set: EvalSet,
    test_set: EvalSet,
    n_test: int,
) -> dict[str, Any]:
    chosen = candidates[selected]
    return {
        "split": f"temporal leave-last-{n_test}-out per user",
        "k": K,
        "evaluated": True,
        "protocol": {
            "holdout_per_user": n_test,
            "min_items_per_user": min_items_to_evaluate(n_test),
            "positives": "every interaction (any type or value) counts as positive",
            "users": full.n_users,
            "items": full.n_items,
            "interactions": len(full),
            "train_interactions": len(train),
            "test_users": len(test_set.users),
            "validation_users": len(val_set.users),
        },
        "selected": selected,
        "baseline": "popularity",
        # the selected algorithm's test metrics at the top level (promotion rules read these)
        **{m: chosen.test.get(m) for m in TOP_LEVEL_METRICS},
        "coverage": chosen.test.get("coverage"),
        "algorithms": {
            c.name: {
                "test": c.test,
                "validation": c.validation,
                "half_life": None if math.isinf(c.half_life) else c.half_life,
                "fit_seconds": round(c.fit_seconds, 3),
                **({"weights": c.weights} if c.weights else {}),
            }
            for c in candidates.values()
        },
    }


def unevaluated(
    data: RecommendationData, algorithm: str, reason: str, *, n_test: int = 5
) -> Comparison:
    """The choice and report of a version trained without the offline evaluation (too
    little data: ``reason``, from :func:`not_evaluated_reason`).

    The report has the shape of :func:`compare`'s, with ``"evaluated": false``, the
    ``reason``, no validation or test users and every metric ``None``. ``auto`` and
    ``hybrid`` choose on the validation set, so without one they train the popularity
    baseline, and the report's ``note`` says so; a named algorithm is trained as asked.
    """
    selected = "popularity" if algorithm in ("auto", "hybrid") else algorithm
    full = data.interactions
    report: dict[str, Any] = {
        "split": f"temporal leave-last-{n_test}-out per user",
        "k": K,
        "evaluated": False,
        "reason": reason,
        "protocol": {
            "holdout_per_user": n_test,
            "min_items_per_user": min_items_to_evaluate(n_test),
            "positives": "every interaction (any type or value) counts as positive",
            "users": full.n_users,
            "items": full.n_items,
            "interactions": len(full),
            "train_interactions": len(full),
            "test_users": 0,
            "validation_users": 0,
        },
        "selected": selected,
        "baseline": "popularity",
        **dict.fromkeys(TOP_LEVEL_METRICS),
        "coverage": None,
        "algorithms": {
            selected: {"test": {}, "validation": {}, "half_life": None, "fit_seconds": 0.0}
        },
    }
    if selected != algorithm:
        report["note"] = (
            f"{algorithm} chooses on a validation set, and there is none: trained the "
            "popularity baseline (most interacted-with items first)"
        )
    return Comparison({selected: Candidate(selected)}, selected, report)


def reevaluation_entry(
    data: RecommendationData, comparison: Comparison, *, actor: str
) -> dict[str, Any]:
    """What a re-run of the offline evaluation stores in a version's report: when, by whom,
    on which data, and the comparison report (as :func:`compare` makes it)."""
    return {
        "evaluated_at": datetime.now(UTC).isoformat(),
        "actor": actor,
        "dataset": data.name,
        "dataset_sha256": data.sha256,
        "last_interaction_id": data.last_interaction_id,
        "report": comparison.report,
    }


def build_model(
    data: RecommendationData,
    comparison: Comparison,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Progress | None = None,
) -> RecommenderModel:
    """Fit the selected algorithm (or the hybrid's parts) and the cold-start parts on all
    interactions."""
    report_progress = progress or (lambda _s, _f: None)
    params = params or {}
    full = data.interactions
    chosen = comparison.candidates[comparison.selected]
    weights = chosen.weights or {chosen.name: 1.0}
    components = []
    fitted: dict[str, Algorithm] = {}
    for i, (name, weight) in enumerate(weights.items()):
        stage = f"final: fitting {name}"
        report_progress(stage, i / (len(weights) + 1))
        fitted[name] = _fit(
            name, full, data.texts, params, _within(report_progress, stage, i, len(weights) + 1)
        )
        components.append(Component(fitted[name], weight, comparison.candidates[name].half_life))
    report_progress("final: fitting cold-start parts", len(weights) / (len(weights) + 1))
    content = fitted.get("content") or _fit("content", full, data.texts, params)
    popularity = fitted.get("popularity") or Popularity().fit(full, data.texts)
    trending = _fit("trending", full, data.texts, params)
    assert isinstance(trending, Trending)
    assert isinstance(content, Content)
    assert isinstance(popularity, Popularity)
    return RecommenderModel(
        name=comparison.selected,
        components=components,
        trending=trending,
        popularity=popularity,
        content=content,
        user_ids=full.user_ids,
        item_ids=full.item_ids,
        last_interaction_id=data.last_interaction_id,
        histories=full.histories(),
    )


@dataclass(frozen=True)
class TrainResult:
    """A registered version and its report."""

    version: ModelVersion
    report: dict[str, Any]
    seconds: float

    @property
    def evaluated(self) -> bool:
        """Whether the offline evaluation ran (``False``: too little data, see the
        report's ``reason``)."""
        return self.report.get("evaluated") is not False


def train_recommendation(
    registry: RegistryService,
    name: str,
    data: RecommendationData,
    *,
    algorithm: str = "auto",
    params: dict[str, dict[str, Any]] | None = None,
    alias: str | None = None,
    description: str = "",
    actor: str = "",
    progress: Progress | None = None,
    lineage_extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Compare, fit and register a recommender (task ``recommendation``).

    Args:
        registry: where the version goes.
        name: registered model name.
        data: interactions and item texts.
        algorithm: one of :data:`CHOICES`; ``auto`` compares all and keeps the best on
            validation; a named one is compared with the popularity baseline only. With
            too little data to evaluate (:func:`not_evaluated_reason`) the version is
            trained on every interaction without an evaluation (:func:`unevaluated`):
            ``auto`` and ``hybrid`` then train ``popularity``.
        params: per algorithm constructor parameters.
        alias: also point this alias at the new version. The first version of a model
            becomes ``production`` when it was evaluated; one that was not is promoted
            only by an explicit choice (``alias="production"``, or a promotion later). A
            version whose report holds a metric that is not finite (NaN, infinity) never
            becomes ``production``, not even when ``alias`` names it: those metrics are
            stored as ``null`` and listed in the report's ``non_finite_metrics``.
        progress: ``(stage, fraction)`` callback.
        lineage_extra: more lineage (a training job's id).

    Returns:
        The version, its evaluation report and the wall-clock seconds of the whole run.

    Raises:
        InvalidInputError: unknown algorithm, a parameter out of its range (the message
            gives the range), or an algorithm that cannot be fitted on this data (``ease``
            without items shared by two users, a fit whose memory estimate exceeds the
            limit, one that diverged).
    """
    if algorithm not in CHOICES:
        raise InvalidInputError(
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(CHOICES)}"
        )
    check_params(params)
    report_progress = progress or (lambda _s, _f: None)
    started = time.perf_counter()
    registry.record(
        actor,
        "training.started",
        f"model:{name}",
        after={"dataset": data.name, "dataset_sha256": data.sha256, "algorithm": algorithm},
    )

    def embedding(stage: str, fraction: float) -> None:
        report_progress(stage, 0.1 * fraction)

    reason = not_evaluated_reason(data.interactions)
    if reason is not None:  # too little data: train without the evaluation
        comparison = unevaluated(data, algorithm, reason)
        data = with_item_embeddings(registry, data, comparison.selected, progress=embedding)
    else:
        data = with_item_embeddings(registry, data, algorithm, progress=embedding)
        names, hybrid = compared(algorithm, data)
        comparison = compare(
            data,
            names,
            hybrid=hybrid,
            params=params,
            progress=lambda s, f: report_progress(s, 0.1 + 0.7 * f),
        )
        if algorithm == "hybrid" and "hybrid" in comparison.candidates:
            comparison.select("hybrid")
        elif not hybrid:
            comparison.select(algorithm)
    fitting = time.perf_counter()
    model = build_model(
        data, comparison, params=params, progress=lambda s, f: report_progress(s, 0.8 + 0.15 * f)
    )
    if reason is not None:
        fit_seconds = round(time.perf_counter() - fitting, 3)
        comparison.report["algorithms"][comparison.selected]["fit_seconds"] = fit_seconds
    report_progress("registering", 0.95)
    artifact = model.to_bytes()
    seconds = time.perf_counter() - started
    comparison.report["train_seconds"] = round(seconds, 2)
    broken = non_finite_metrics(comparison.report)
    if broken:  # never production: stored as null (JSON has no NaN), named in the report
        comparison.report = non_finite_as_null(comparison.report)
        comparison.report["non_finite_metrics"] = broken
        if alias == PRODUCTION:
            alias = None
    lineage = {
        "dataset": data.name,
        "dataset_sha256": data.sha256,
        "algorithm": algorithm,
        "selected": comparison.selected,
        "components": model.meta()["components"],
        "params": params or {},
        "last_interaction_id": data.last_interaction_id,
        "users": data.interactions.n_users,
        "items": data.interactions.n_items,
        "interactions": len(data.interactions),
        **({"embedding_model": data.embedding_model} if data.embedding_model else {}),
        "aiweb_version": __version__,
        "trained_at": datetime.now(UTC).isoformat(),
        "fit_seconds": round(seconds, 3),
        **(lineage_extra or {}),
    }
    signature = {
        "inputs": {"user_id": "string", "n": "integer"},
        "outputs": {"items": [{"item_id": "string", "score": "number", "reason": "string"}]},
    }
    version = registry.register_version(
        name,
        TASK,
        artifact=artifact,
        artifact_format=ARTIFACT_FORMAT,
        labels=[],
        signature=signature,
        lineage=lineage,
        evaluation=comparison.report,
        description=description,
        alias=alias,
        actor=actor,
        # an unevaluated version: only when asked; one with non-finite metrics: never
        production_if_first=reason is None and not broken,
    )
    report_progress("done", 1.0)
    return TrainResult(version=version, report=comparison.report, seconds=seconds)
