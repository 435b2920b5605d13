"""Fit the text pipeline: TF-IDF (word 1-2-grams + char n-grams) + LogisticRegression.

The features follow the classic strong linear baseline for short-text classification
(Wang & Manning, "Baselines and Bigrams", ACL 2012): word 1-2-grams and character
2-5-grams inside word boundaries, each counted with scikit-learn's
:class:`~sklearn.feature_extraction.text.HashingVectorizer` (the hashing trick,
Weinberger et al., ICML 2009: no vocabulary to store, so artifacts are a few MB and load
in milliseconds) and weighted by :class:`~sklearn.feature_extraction.text.TfidfTransformer`
(sublinear tf, smoothed idf). The classifier is
:class:`sklearn.linear_model.LogisticRegression` (L2, lbfgs) with a fixed seed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline

from aiweb.classification.model import TextClassifier
from aiweb.errors import InvalidInputError
from aiweb.jobs.child import run_in_child

#: ``progress(stage, fraction)`` with fraction in [0, 1] of the whole fit.
ProgressCallback = Callable[[str, float], None]


#: ``C`` of minilm features when none is given: dense 384-dimensional unit vectors need
#: less regularisation than sparse n-grams (Banking77 test accuracy 0.920 at C=2, 0.932 at
#: 8; CLINC150 and the tweets within ±0.007 of their best; docs/benchmarks.md).
MINILM_DEFAULT_C = 8.0
#: stacked features: the MiniLM part's ``C`` is this many times the TF-IDF part's (the
#: given ``C``, 2.0 by default), so the defaults of both parts are kept: 4 x 2.0 = 8.0.
STACKED_MINILM_C_RATIO = MINILM_DEFAULT_C / 2.0


class TrainParams(BaseModel):
    """Hyper-parameters of the pipeline. Stored in each version's lineage.

    Every number has a finite range (NaN and infinity are refused, also as strings):
    :func:`parse_params` checks them with messages that give the range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    word_ngram_max: int = Field(2, ge=1, le=3, description="Word n-grams 1..N.")
    char_ngram_min: int = Field(2, ge=1, le=6, description="Character n-grams from N.")
    char_ngram_max: int = Field(5, ge=1, le=8, description="Character n-grams up to N.")
    n_features_log2: int = Field(
        19, ge=10, le=24, description="Hashed feature columns per vectorizer: 2**N."
    )
    C: float = Field(
        2.0,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="Inverse L2 regularisation strength; when not given, 2.0 for tfidf "
        f"features and {MINILM_DEFAULT_C} for minilm features. stacked features: C of the "
        f"TF-IDF part (2.0 when not given); the MiniLM part gets {STACKED_MINILM_C_RATIO:g} x C "
        f"({MINILM_DEFAULT_C} by default).",
    )
    class_weight: str | None = Field(
        "balanced", pattern="^balanced$", description='"balanced" or null.'
    )
    max_iter: int = Field(
        2000, ge=10, le=100_000, description="Most lbfgs iterations of LogisticRegression."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed (split, optimizer).")
    vectorizer: Literal["hashing", "tfidf"] = Field(
        "hashing",
        description="'hashing': word + char_wb n-grams, hashed (the default, most accurate). "
        "'tfidf': word n-grams with a stored vocabulary (ASCII tokens, linear tf) — a "
        "pipeline skl2onnx can export, so it may be served by onnxruntime.",
    )
    features: Literal["tfidf", "minilm", "stacked", "finetune", "auto"] = Field(
        "tfidf",
        description="'tfidf': the n-gram pipeline above. 'minilm': all-MiniLM-L6-v2 sentence "
        "embeddings (a registered feature-extraction model) + LogisticRegression; the "
        "n-gram parameters then do not apply. 'stacked': both, one LogisticRegression on "
        "each, their probabilities blended with a weight chosen on the evaluation split. "
        "'finetune': all-MiniLM-L6-v2 fine-tuned with a classification head on this CPU "
        "(needs aiweb[export]) and served from ONNX. 'auto': tfidf, minilm, stacked and, "
        "when max_train_minutes is given, finetune; the best evaluation macro-F1 is kept.",
    )
    epochs: int | None = Field(
        None,
        ge=1,
        le=100,
        description="finetune: passes over the data at most; null (default): enough for "
        "3,000 steps, 3 to 20 epochs (docs/models.md).",
    )
    learning_rate: float = Field(
        5e-5,
        gt=0,
        le=0.01,
        allow_inf_nan=False,
        description="finetune: peak AdamW learning rate (linear warm-up, then decay to 0).",
    )
    batch_size: int = Field(32, ge=1, le=1024, description="finetune: texts per step.")
    max_tokens: int = Field(
        128,
        ge=8,
        le=512,
        description="finetune: word pieces read per text; longer texts are truncated.",
    )
    max_train_minutes: float | None = Field(
        None,
        gt=0,
        le=10_080,
        allow_inf_nan=False,
        description="finetune: time budget of the training loop in minutes (default 30): the "
        "schedule is fitted to it and training stops at the best checkpoint so far. auto: "
        "finetune is tried only when this is given.",
    )
    max_train_rows: int | None = Field(
        None,
        ge=10,
        le=100_000_000,
        description="finetune: train on a seeded random sample of this many rows.",
    )
    embedding_model: str | None = Field(
        None,
        max_length=130,
        description="minilm and stacked features: the embedding model (name, name@alias or "
        "name:3), "
        "resolved once at training and pinned; default minilm@production.",
    )
    oos_label: str = Field(
        "oos",
        min_length=1,
        max_length=100,
        description="Out-of-scope label: when the data has it, a threshold on the top "
        "probability is calibrated on the evaluation split and the model answers it below.",
    )
    oos_training: Literal["class", "exclude"] = Field(
        "class",
        description="Out-of-scope training rows: 'class' keeps them as one more class "
        "(better on CLINC150), 'exclude' trains on in-scope rows only.",
    )
    oos_criterion: Literal["oos_f2", "oos_f1", "balanced"] = Field(
        "oos_f2",
        description="What the threshold maximises on the evaluation split: F2 or F1 of the "
        "out-of-scope answer, or in-scope accuracy + out-of-scope recall.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_c(cls, data: Any) -> Any:
        """minilm features without an explicit ``C`` get :data:`MINILM_DEFAULT_C`."""
        if isinstance(data, dict) and data.get("features") == "minilm" and data.get("C") is None:
            return {**data, "C": MINILM_DEFAULT_C}
        return data


def valid_range(name: str) -> str | None:
    """The range of numeric parameter ``name`` of :class:`TrainParams` in words (``an
    integer in [10, 100000]``, ``a finite number in (0, 1000000]``), else ``None``."""
    field = TrainParams.model_fields.get(name)
    if field is None or field.annotation not in (int, float):
        return None
    low: Any = None
    high: Any = None
    low_open = False
    for m in field.metadata:
        if getattr(m, "gt", None) is not None:
            low, low_open = m.gt, True
        if getattr(m, "ge", None) is not None:
            low = m.ge
        if getattr(m, "le", None) is not None:
            high = m.le
    if low is None or high is None:
        return None
    kind = "an integer" if field.annotation is int else "a finite number"
    return f"{kind} in {'(' if low_open else '['}{_num(low)}, {_num(high)}]"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def parse_params(values: Any) -> TrainParams:
    """:class:`TrainParams` from a JSON object (a job's ``params``, ``--param``s).

    Raises:
        InvalidInputError: not an object, an unknown parameter, a value of the wrong
            type or out of its range (e.g. ``C='NaN': Input should be a finite number
            (valid: a finite number in (0, 1000000])``; every problem, ``;``-separated),
            or ``char_ngram_min > char_ngram_max``.
    """
    if not isinstance(values, dict):
        raise InvalidInputError("params must be an object of name: value")
    try:
        params = TrainParams.model_validate(values)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                known = ", ".join(TrainParams.model_fields)
                problems.append(f"unknown parameter {loc!r} (parameters: {known})")
                continue
            text = f"{loc}={e.get('input')!r:.60}: {e['msg']}" if loc else e["msg"]
            valid = valid_range(loc)
            problems.append(text + (f" (valid: {valid})" if valid else ""))
        raise InvalidInputError(f"invalid params: {'; '.join(problems)}") from None
    if params.char_ngram_min > params.char_ngram_max:
        raise InvalidInputError(
            f"invalid params: char_ngram_min={params.char_ngram_min} must not exceed "
            f"char_ngram_max={params.char_ngram_max}"
        )
    return params


#: Word tokens of the ``tfidf`` vectorizer: 2+ ASCII word characters, the pattern
#: onnxruntime's RE2 tokenizer reproduces exactly (Python's ``\w`` is Unicode-aware).
ASCII_WORD_REGEX = r"(?a)\b\w\w+\b"


def _vectorizers(params: TrainParams) -> list[tuple[str, Any]]:
    if params.vectorizer == "tfidf":
        vocabulary = CountVectorizer(
            ngram_range=(1, params.word_ngram_max),
            token_pattern=ASCII_WORD_REGEX,
            dtype=np.float32,
        )
        return [("word", vocabulary)]
    common = {
        "n_features": 2**params.n_features_log2,
        "alternate_sign": False,
        "norm": None,
        "dtype": np.float32,
    }
    return [
        ("word", HashingVectorizer(ngram_range=(1, params.word_ngram_max), **common)),
        (
            "char",
            HashingVectorizer(
                analyzer="char_wb",
                ngram_range=(params.char_ngram_min, params.char_ngram_max),
                **common,
            ),
        ),
    ]


def fit_text_classifier(
    texts: list[str],
    labels: list[str],
    params: TrainParams | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> TextClassifier:
    """Fit the pipeline on ``texts``/``labels``.

    Args:
        texts: ``n`` training texts.
        labels: ``n`` class names (at least two distinct).
        params: hyper-parameters; defaults when ``None``.
        progress: called with a stage name and the fraction done.

    Returns:
        The fitted :class:`TextClassifier`.

    Raises:
        InvalidInputError: fewer than two classes, or lengths differ.
    """
    params = params or TrainParams()
    if len(texts) != len(labels):
        raise InvalidInputError(f"{len(texts)} texts but {len(labels)} labels")
    if len(set(labels)) < 2:
        raise InvalidInputError("training data needs at least two distinct labels")
    if params.char_ngram_min > params.char_ngram_max:
        raise InvalidInputError("char_ngram_min must not exceed char_ngram_max")
    report = progress or (lambda _stage, _fraction: None)
    fitted: list[tuple[str, Any]] = []
    blocks = []
    for i, (name, vec) in enumerate(_vectorizers(params)):
        report(f"vectorizing ({name} n-grams)", i * 0.25)
        # skl2onnx's converter does not reproduce sublinear tf, so the exportable
        # 'tfidf' pipeline counts terms linearly
        tfidf = TfidfTransformer(sublinear_tf=params.vectorizer == "hashing")
        counts = (
            vec.transform(texts) if params.vectorizer == "hashing" else vec.fit_transform(texts)
        )
        blocks.append(tfidf.fit_transform(counts))
        fitted.append((name, make_pipeline(vec, tfidf)))
    report("fitting logistic regression", 0.5)
    features = sparse.hstack(blocks, format="csr")
    check_optimizer_memory(len(set(labels)), features.shape[1])
    clf = LogisticRegression(
        C=params.C,
        max_iter=params.max_iter,
        class_weight=params.class_weight,
        random_state=params.seed,
    )
    clf = fit_logistic_regression(
        clf, features, labels, check=lambda: report("fitting logistic regression", 0.5)
    )
    report("fitted", 1.0)
    pipeline = Pipeline([("features", FeatureUnion(fitted)), ("clf", clf)])
    return TextClassifier(pipeline)


#: LogisticRegression fits of at least this much work per lbfgs iteration
#: (:func:`lbfgs_work`) run in a child process that a cancel ends
#: (:func:`aiweb.jobs.child.run_in_child`); smaller ones in this process. Measured on the
#: 2-core reference machine: the child costs 1.2-1.5 s (a fresh interpreter importing
#: scikit-learn, the features and labels there and the coefficients back at ~1 GB/s),
#: while in process SST-2 with the default hashed features (one row of 2²⁰ weights) fits
#: in 1.3-1.7 s at 1,000-3,000 rows (work 1.2-1.5 M) and 2.9 s at 10,000 (2.6 M), but
#: 5.5 s at 30,000 (5.7 M); Banking77 takes 41 s with ``vectorizer=tfidf`` at 10,000 rows
#: (17 M) and 50 s hashed at only 1,000 rows and 7 classes (8 M). Below 3 M a fit takes
#: a few seconds at most, and a cancel may wait for it.
LBFGS_CHILD_MIN_WORK = 3_000_000


def lbfgs_work(n_classes: int, features: sparse.csr_matrix) -> int:
    """What one lbfgs iteration of LogisticRegression costs, in stored numbers touched:
    the weights plus the stored feature values, times the rows of weights (one when
    there are two classes, else one per class)."""
    rows = n_classes if n_classes > 2 else 1
    return rows * (int(features.shape[1]) + int(features.nnz))


def fit_logistic_regression(
    clf: LogisticRegression,
    features: sparse.csr_matrix,
    labels: list[str],
    *,
    check: Callable[[], None] | None = None,
    child: bool | None = None,
) -> LogisticRegression:
    """``clf`` fitted on ``features``/``labels``: in a child process when the fit is
    large (``child=None``: :func:`lbfgs_work` at least :data:`LBFGS_CHILD_MIN_WORK`;
    ``True``/``False`` forces it), else here, to the same coefficients either way.

    Args:
        check: called every 0.25 s while a child fits (the job's progress, which raises
            when the job is cancelled); what it raises ends the child and propagates.

    Returns:
        The fitted classifier (a copy unpickled from the child, or ``clf`` itself).

    Raises:
        ValueError: what LogisticRegression raises, from either path.
        ChildDied: the child process was killed (out of memory) before answering
            (:class:`aiweb.jobs.child.ChildDied`).
    """
    if child is None:
        child = lbfgs_work(len(set(labels)), features) >= LBFGS_CHILD_MIN_WORK
    if not child:
        return clf.fit(features, labels)
    fitted: LogisticRegression = run_in_child(
        clf.fit, features, labels, check=check, what="the LogisticRegression fit"
    )
    return fitted


#: Bytes per weight of LogisticRegression's lbfgs fit: scipy's L-BFGS-B work array holds
#: 2·m + 5 float64 per weight (m = 10 correction pairs, scipy's ``maxcor``), and
#: scikit-learn keeps about four more copies (weights, gradient, line search).
LBFGS_BYTES_PER_WEIGHT = (2 * 10 + 5 + 4) * 8


def check_optimizer_memory(n_classes: int, n_columns: int) -> None:
    """Refuse a fit whose optimizer state cannot fit in this machine's memory.

    A multinomial LogisticRegression has ``n_classes x (n_columns + 1)`` weights (one row
    when there are two classes), and lbfgs needs :data:`LBFGS_BYTES_PER_WEIGHT` bytes per
    weight: the default TF-IDF features (2 x 2**19 columns) on CLINC150's 151 classes
    would need ~37 GB. Failing before the fit beats a MemoryError minutes into it.

    Args:
        n_classes: distinct labels.
        n_columns: feature columns.

    Raises:
        InvalidInputError: the estimate exceeds the physical memory (names the options
            that shrink it). Without ``os.sysconf`` the check is skipped.
    """
    weights = (n_classes if n_classes > 2 else 1) * (n_columns + 1)
    needed = LBFGS_BYTES_PER_WEIGHT * weights
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return
    if needed > total:
        raise InvalidInputError(
            f"{n_classes} classes x {n_columns:,} feature columns need about "
            f"{needed / 1e9:.0f} GB to fit LogisticRegression (lbfgs), more than this "
            f"machine's {total / 1e9:.0f} GB: use fewer hashed columns (--param "
            "n_features_log2=16), --param vectorizer=tfidf, or --features minilm"
        )


def deduplicate(texts: list[str], labels: list[str]) -> tuple[list[str], list[str], int]:
    """Keep one row per distinct text (after stripping), with its most common label.

    Returns:
        ``(texts, labels, n_removed)`` in first-seen order.
    """
    votes: dict[str, Counter[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        votes.setdefault(text.strip(), Counter())[label] += 1
    out_t = list(votes)
    out_l = [votes[t].most_common(1)[0][0] for t in out_t]
    return out_t, out_l, len(texts) - len(out_t)


def split_train_test(
    texts: list[str], labels: list[str], *, test_size: float, seed: int = 0
) -> tuple[list[str], list[str], list[str], list[str], dict[str, Any]]:
    """De-duplicate, then split stratified by label so no text is on both sides.

    Args:
        texts: ``n`` texts; labels: ``n`` labels.
        test_size: fraction in (0, 1) held out for evaluation.
        seed: random seed of the split.

    Returns:
        ``(train_texts, train_labels, test_texts, test_labels, info)`` where ``info``
        records the number of duplicates removed and the split sizes.

    Raises:
        InvalidInputError: too little data to hold out every class.
    """
    if not 0 < test_size < 1:
        raise InvalidInputError(f"test_size must be between 0 and 1, not {test_size}")
    uniq_t, uniq_l, removed = deduplicate(texts, labels)
    counts = Counter(uniq_l)
    rare = sorted(label for label, c in counts.items() if c < 2)
    if rare:
        raise InvalidInputError(
            f"labels with fewer than 2 distinct texts cannot be split into training and "
            f"evaluation rows: {', '.join(rare[:10])}{' …' if len(rare) > 10 else ''}. Give "
            "each label at least 2 different texts (more make a better model), drop the "
            "labels you cannot, or give separate evaluation data (--eval-data in the CLI, "
            "eval_dataset_id in a training job)"
        )
    try:
        tr_t, te_t, tr_l, te_l = train_test_split(
            uniq_t, uniq_l, test_size=test_size, random_state=seed, stratify=uniq_l
        )
    except ValueError as exc:
        raise InvalidInputError(f"cannot split the data: {exc}") from exc
    info = {"duplicates_removed": removed, "train_rows": len(tr_t), "test_rows": len(te_t)}
    return list(tr_t), list(tr_l), list(te_t), list(te_l), info
