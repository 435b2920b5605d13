"""The version of aiweb: the one place it is written (``pyproject.toml`` reads it from
here), so that ``import aiweb`` needs no look-up in the installed packages' metadata."""

__version__ = "0.1.0"
