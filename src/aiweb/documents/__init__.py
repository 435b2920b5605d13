"""Uploaded documents (PDF, DOCX, plain text): their text, page by page, and the PII in it.

- :mod:`aiweb.documents.extract`: tell a document's type from its bytes, refuse hostile
  files, and read its text page by page (pypdf, python-docx; imported only when used);
- :mod:`aiweb.documents.pii`: find and replace e-mail addresses, phone numbers and URLs;
- :mod:`aiweb.documents.service`: keep documents (artifact store + ``documents`` table),
  list, read back and delete them (``/v1/documents``, ``aiweb documents``).

Formats, limits, what is refused and why, the stored layout and the redaction rule:
``docs/documents.md``.
"""

from __future__ import annotations

__all__ = ["extract", "pii", "service"]
