"""Uploaded images (JPEG, PNG, WebP): decoded safely, kept without their metadata.

- :mod:`aiweb.images.decode`: tell an image's format from its bytes, refuse hostile
  files (decompression bombs, truncated or corrupt files, animations, polyglots) before
  or while decoding, and give back 8-bit RGB pixels as displayed (EXIF orientation
  applied);
- :mod:`aiweb.images.service`: keep images (artifact store + ``images`` table), list,
  read back and delete them (``/v1/images``, ``aiweb images``).

A layer below the task contract: it names no task. What is accepted, the limits, what is
refused and why, and why metadata is never stored: ``docs/images.md``.
"""

from __future__ import annotations

__all__ = ["decode", "service"]
