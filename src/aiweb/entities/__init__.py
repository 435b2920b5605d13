"""Token classification (entity and skill extraction): the ``token-classification`` task.

Being built (issue 23). What exists so far is its data and evaluation foundation:

- :mod:`aiweb.entities.data`: one representation of annotated text
  (:class:`~aiweb.entities.data.Example`: a text, its entity spans as character offsets,
  and its token offsets when it came as tokens), the CoNLL/IOB and JSONL readers that
  give it (malformed input is a 422 naming the line), the conversions between IOB tags
  and character spans, and :func:`~aiweb.entities.data.load_dataset` for the built-in
  ``wnut17``, ``skillspan`` and ``job_description_entities`` datasets;
- :mod:`aiweb.entities.evaluation`: entity-level exact-match precision, recall and F1 per
  type and averaged (micro, macro, weighted), by the CoNLL rules as ``seqeval`` computes
  them, from tags or from character spans, and the report table.

Not here yet (built separately): the spaCy model and its training, serving through
``POST /v1/models/{name}/predict``, documents and screening; the package is not an
installed task (``aiweb.tasks``) until then. See ``docs/entities.md``.
"""

__all__ = ["data", "evaluation"]
