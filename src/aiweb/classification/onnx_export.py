"""ONNX export of text classifiers, the agreement check, and the onnxruntime runtime.

At training, :func:`export_onnx` converts the fitted scikit-learn pipeline with skl2onnx
(https://onnx.ai/sklearn-onnx/) and scores the evaluation set with both runtimes. The
export is kept only when onnxruntime gives the same label on 100% of the rows and no
probability differs by more than :data:`MAX_ABS_DIFF`; the check is stored in the
version's evaluation report under ``"onnx"`` either way::

    {"status": "agrees" | "disagrees" | "unsupported" | "unavailable",
     "rows": 872, "same_label_rate": 1.0, "max_abs_diff": 1.6e-07, "threshold": 1e-04,
     "artifact": "model.onnx", "sha256": "…", "bytes": 3014827, "reason": "…"}

``unsupported`` means skl2onnx cannot convert the pipeline: the default ``hashing``
pipeline (HashingVectorizer and char_wb n-grams have no ONNX equivalent) always is; the
``tfidf`` pipeline (word n-grams with a vocabulary) usually converts and agrees.

At load (:func:`with_onnx`), a version whose export agreed is served by
:class:`DualRuntime`: onnxruntime for model calls of at most
``serving.onnx_max_batch`` texts, scikit-learn for larger ones. onnxruntime has the lower
fixed cost per call, while scikit-learn's sparse matrix code is several times faster per
text on batches (measured in docs/benchmarks.md), and micro-batching makes batches the
common case under load.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from aiweb.classification.model import TextClassifier
from aiweb.classification.trainer import ASCII_WORD_REGEX
from aiweb.config import ServingSettings
from aiweb.errors import CorruptArtifactError
from aiweb.registry.artifacts import ArtifactStore, read_verified
from aiweb.registry.entities import ModelVersion

log = logging.getLogger(__name__)

#: Largest |p_onnx - p_sklearn| over the evaluation rows for the export to be used.
MAX_ABS_DIFF = 1e-4
#: File name of the ONNX artifact, next to the version's main artifact.
ONNX_ARTIFACT = "model.onnx"
#: ONNX opsets the export targets (default domain, ai.onnx.ml).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
_CHECK_CHUNK = 512


class OnnxTextClassifier:
    """A text classifier exported to ONNX, run by onnxruntime on one thread.

    Args:
        data: the serialised ONNX model (input ``text``: string tensor ``[n, 1]``;
            outputs ``label`` and ``probabilities``: float32 ``[n, n_classes]``).
        labels: class names in the column order of the probabilities.

    Raises:
        onnxruntime's ``Fail``/``InvalidGraph`` errors when ``data`` is not a valid model.
    """

    name = "onnx"

    def __init__(self, data: bytes, labels: list[str]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # requests are batched; processes scale out
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.labels = labels
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self._output = "probabilities"

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities, float64 array ``(len(texts), len(labels))``."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        feed = {"text": np.array(texts, dtype=object).reshape(-1, 1)}
        (proba,) = self._session.run([self._output], feed)
        return np.asarray(proba, dtype=np.float64)


class DualRuntime:
    """onnxruntime for small model calls, scikit-learn for larger ones (same results,
    checked at export). A call onnxruntime fails on is answered by scikit-learn.

    Args:
        sklearn_runtime: the scikit-learn classifier.
        onnx_runtime: its agreeing ONNX export.
        onnx_max_batch: largest call given to onnxruntime.
    """

    def __init__(
        self,
        sklearn_runtime: TextClassifier,
        onnx_runtime: OnnxTextClassifier,
        onnx_max_batch: int | None,
    ) -> None:
        self.sklearn = sklearn_runtime
        self.onnx = onnx_runtime
        self.labels = sklearn_runtime.labels
        self.onnx_max_batch = onnx_max_batch
        self.name = "onnx" if onnx_max_batch is None else "onnx+sklearn"
        self._warned = False

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """Class probabilities, float64 array ``(len(texts), len(labels))``."""
        if self.onnx_max_batch is None or len(texts) <= self.onnx_max_batch:
            try:
                return self.onnx.predict_proba(texts)
            except Exception as exc:  # an input onnxruntime rejects: scikit-learn answers
                if not self._warned:
                    self._warned = True
                    log.warning("onnxruntime failed on a batch; scikit-learn answered: %s", exc)
        return self.sklearn.predict_proba(texts)


def _convert(model: TextClassifier) -> bytes:
    from onnx import helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    options: dict[Any, dict[str, Any]] = {}
    for step in _steps(model.pipeline):
        if isinstance(step, CountVectorizer | TfidfVectorizer):
            if step.token_pattern == ASCII_WORD_REGEX:
                # RE2 (onnxruntime's regex engine) is ASCII in \w and \b already
                options[id(step)] = {"tokenexp": r"\b\w\w+\b"}
        elif hasattr(step, "predict_proba"):
            options[id(step)] = {"zipmap": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(
            model.pipeline,
            initial_types=[("text", StringTensorType([None, 1]))],
            options=options,
            target_opset=TARGET_OPSET,
        )
    for node in onx.graph.node:
        if node.op_type == "StringNormalizer":
            # the default locale (en_US.UTF-8) is often not installed; C.UTF-8 always is
            node.attribute.append(helper.make_attribute("locale", "C.UTF-8"))
    return bytes(onx.SerializeToString())


def _steps(estimator: Any) -> list[Any]:
    """Every estimator inside ``estimator`` (pipelines and unions walked), itself included."""
    out = [estimator]
    for _name, child in getattr(estimator, "steps", []):
        out.extend(_steps(child))
    for _name, child in getattr(estimator, "transformer_list", []):
        out.extend(_steps(child))
    return out


_NO_CONVERTER = re.compile(r"for type '<class '(?:[\w.]+\.)?(\w+)'>'")


def _unsupported_reason(exc: Exception) -> str:
    """Why skl2onnx could not convert, in one line: the estimator it has no converter for
    (its usual complaint, a MissingShapeCalculator), else its own first line."""
    message = str(exc)
    missing = _NO_CONVERTER.search(message)
    if missing:
        return f"skl2onnx has no converter for {missing[1]}"
    return f"{type(exc).__name__}: {message}".splitlines()[0][:300]


def export_onnx(
    model: TextClassifier,
    texts: list[str],
    expected: npt.NDArray[np.float64] | None = None,
) -> tuple[bytes | None, dict[str, Any]]:
    """Export ``model`` to ONNX and check it against scikit-learn on ``texts``.

    Args:
        model: the fitted classifier.
        texts: the evaluation texts (at least one).
        expected: ``model.predict_proba(texts)`` when the caller has it already (training
            does), so it is not computed twice.

    Returns:
        ``(onnx_bytes, check)``: the bytes only when the export agrees (same label on every
        row, max |Δp| <= :data:`MAX_ABS_DIFF`), else ``None``; ``check`` as in the module
        docstring. Never raises for a model that cannot be converted.
    """
    check: dict[str, Any] = {"threshold": MAX_ABS_DIFF, "artifact": ONNX_ARTIFACT}
    try:
        import onnxruntime  # noqa: F401
        import skl2onnx  # noqa: F401
    except ImportError as exc:
        return None, {**check, "status": "unavailable", "reason": f"not installed: {exc.name}"}
    try:
        data = _convert(model)
    except Exception as exc:  # skl2onnx raises many types for unconvertible models
        return None, {**check, "status": "unsupported", "reason": _unsupported_reason(exc)}
    runtime = OnnxTextClassifier(data, model.labels)
    if expected is None:
        expected = model.predict_proba(texts)
    same = 0
    max_diff = 0.0
    for start in range(0, len(texts), _CHECK_CHUNK):
        want = expected[start : start + _CHECK_CHUNK]
        got = runtime.predict_proba(texts[start : start + _CHECK_CHUNK])
        same += int((want.argmax(axis=1) == got.argmax(axis=1)).sum())
        max_diff = max(max_diff, float(np.abs(want - got).max()))
    rate = same / len(texts) if texts else 0.0
    agrees = bool(texts) and same == len(texts) and max_diff <= MAX_ABS_DIFF
    check.update(
        status="agrees" if agrees else "disagrees",
        rows=len(texts),
        same_label_rate=rate,
        max_abs_diff=max_diff,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )
    if not agrees:
        check["reason"] = (
            f"onnxruntime gave the same label on {rate:.2%} of {len(texts)} rows and "
            f"max |Δp| {max_diff:.2e} (needs 100% and <= {MAX_ABS_DIFF:g})"
        )
    return (data if agrees else None), check


def with_onnx(
    runtime: TextClassifier,
    version: ModelVersion,
    artifacts: ArtifactStore,
    serving: ServingSettings,
) -> TextClassifier | DualRuntime:
    """The runtime to serve ``version`` with under ``serving.runtime``.

    ``sklearn``, or a version whose export did not agree, gives ``runtime`` unchanged.
    Otherwise the ONNX artifact is read and checked against the sha256 in the report; a
    missing or altered file is logged and scikit-learn serves.
    """
    check = version.evaluation.get("onnx") or {}
    if serving.runtime == "sklearn" or check.get("status") != "agrees":
        return runtime
    what = f"ONNX export of {version.name}:{version.version}"
    try:
        # an agreeing export always has its sha256 recorded; "-" refuses one without
        data = read_verified(
            artifacts, version.file_uri(ONNX_ARTIFACT), check.get("sha256") or "-", what
        )
    except CorruptArtifactError as exc:
        log.error("%s; serving with scikit-learn", exc.detail)
        return runtime
    limit = None if serving.runtime == "onnx" else serving.onnx_max_batch
    return DualRuntime(runtime, OnnxTextClassifier(data, runtime.labels), limit)
