"""The catalogue of built-in datasets: which there are, and finding, downloading and
parsing one by name (:func:`available`, :func:`info`, :func:`locate`, :func:`on_disk`,
:func:`fetch`, :func:`load`). Each dataset is one module (address, files, parser,
caveats) built on :mod:`aiweb.datasets._base`; this module lists them."""

from __future__ import annotations

from pathlib import Path

from aiweb.config import Settings
from aiweb.datasets import (
    banking77,
    clinc150,
    job_description_entities,
    movielens,
    skillspan,
    sms_spam,
    sst2,
    twitter_airline,
    wnut17,
)
from aiweb.datasets._base import DatasetInfo, DatasetSpec, DatasetSplits, _complete, _download
from aiweb.errors import DataFormatError, DatasetNotFound


def _registry() -> dict[str, DatasetSpec]:
    specs = (
        sst2.SPEC,
        sms_spam.SPEC,
        movielens.SPEC,
        clinc150.SPEC,
        banking77.SPEC,
        twitter_airline.SPEC,
        wnut17.SPEC,
        skillspan.SPEC,
        job_description_entities.SPEC,
    )
    return {spec.info.name: spec for spec in specs}


def _spec(name: str) -> DatasetSpec:
    registry = _registry()
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise DatasetNotFound(f"unknown dataset {name!r}; known datasets: {known}") from None


def available() -> list[DatasetInfo]:
    """The built-in datasets.

    Returns:
        One :class:`DatasetInfo` per dataset, sorted by name.
    """
    return [spec.info for _, spec in sorted(_registry().items())]


def info(name: str) -> DatasetInfo:
    """Describe one built-in dataset.

    Args:
        name: dataset name, e.g. ``"sst2"``.

    Returns:
        Its :class:`DatasetInfo`.

    Raises:
        DatasetNotFound: ``name`` is not a built-in dataset (the message lists them).
    """
    return _spec(name).info


def locate(name: str, settings: Settings, *, url: str | None = None, progress: bool = True) -> Path:
    """Find a dataset's directory, downloading it into the cache when needed.

    Looks in ``settings.data_home/<directory>/``, then in
    ``settings.datasets_cache_dir/<directory>/``; a directory counts only when all the
    dataset's files are there. Otherwise downloads the zip archive and extracts the
    needed members atomically into the cache.

    Args:
        name: dataset name (``"sst2"``, ``"sms_spam"``).
        settings: supplies ``data_home`` and ``datasets_cache_dir``.
        url: archive to download instead of the canonical one (mirrors, tests).
        progress: show a transient download progress bar on stderr.

    Returns:
        The directory holding the dataset's files.

    Raises:
        DatasetNotFound: unknown dataset name.
        DatasetUnavailableError: the files are not on disk and the download failed
            (network error, HTTP error status, not a zip archive, member missing, cache
            not writable). The message names the URL, the reason, and how to proceed
            offline.
    """
    spec = _spec(name)
    found = on_disk(name, settings)
    if found is not None:
        return found
    _download(spec, settings, url or spec.info.url, progress=progress)
    return settings.datasets_cache_dir / spec.info.directory


def on_disk(name: str, settings: Settings) -> Path | None:
    """A dataset's directory when all its files are on disk (``settings.data_home``
    first, then the cache), without downloading anything.

    Returns:
        The directory, or ``None`` when the dataset would have to be downloaded.

    Raises:
        DatasetNotFound: unknown dataset name.
    """
    spec = _spec(name)
    directory = spec.info.directory
    if settings.data_home is not None:
        candidate = settings.data_home / directory
        if _complete(candidate, spec.files):
            return candidate
    cached = settings.datasets_cache_dir / directory
    if _complete(cached, spec.files):
        return cached
    return None


def fetch(name: str, settings: Settings, *, url: str | None = None, progress: bool = True) -> Path:
    """Make sure a dataset is on disk (``aiweb datasets fetch``); same as :func:`locate`.

    Args:
        name: dataset name.
        settings: supplies ``data_home`` and ``datasets_cache_dir``.
        url: archive to download instead of the canonical one.
        progress: show a transient download progress bar on stderr.

    Returns:
        The directory holding the dataset's files.

    Raises:
        DatasetNotFound: unknown dataset name.
        DatasetUnavailableError: not on disk and the download failed.
    """
    return locate(name, settings, url=url, progress=progress)


def load(
    name: str, settings: Settings, *, url: str | None = None, progress: bool = True
) -> DatasetSplits:
    """Locate (downloading if needed) and parse a built-in dataset.

    Args:
        name: dataset name (``"sst2"``, ``"sms_spam"``).
        settings: supplies ``data_home`` and ``datasets_cache_dir``.
        url: archive to download instead of the canonical one.
        progress: show a transient download progress bar on stderr.

    Returns:
        The dataset's :class:`DatasetSplits` (SST-2: train + GLUE dev; SMS: all rows in
        ``train``, ``eval`` is ``None``).

    Raises:
        DatasetNotFound: unknown dataset name.
        DatasetUnavailableError: not on disk and the download failed.
        DataFormatError: a file is malformed (names the file and line), or the dataset
            is not labeled texts (its task reads it).
    """
    spec = _spec(name)
    if spec.parse is None:
        raise DataFormatError(
            f"{name} is a {spec.info.task} dataset, not labeled texts: the "
            f"{spec.info.task} task reads it (its files: aiweb.datasets.locate({name!r}, "
            "settings))"
        )
    return spec.parse(locate(name, settings, url=url, progress=progress))
