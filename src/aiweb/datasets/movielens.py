"""MovieLens ``ml-latest-small``: 100,836 ratings and 3,683 tags by 610 users on 9,742 movies.

Files ``movielens_latest_small/{ratings,movies,tags,links}.csv`` as published by GroupLens
in ``ml-latest-small.zip`` (members ``ml-latest-small/<file>``), release 2018-09-26.
Citation: F. Maxwell Harper and Joseph A. Konstan, "The MovieLens Datasets: History and
Context", ACM TiiS 5(4), 2015.

Format: comma-separated with a header, RFC 4180 quoting (titles holding commas are
quoted), UTF-8. ``ratings.csv``: ``userId,movieId,rating,timestamp`` (0.5-5.0 stars in
0.5 steps, Unix seconds UTC). ``movies.csv``: ``movieId,title,genres`` (genres separated
by ``|``; ``(no genres listed)`` means none). ``tags.csv``: ``userId,movieId,tag,timestamp``
(free text). ``links.csv`` (IMDb and TMDb ids) is fetched but not parsed.

Typical use::

    from aiweb.config import get_settings
    from aiweb.datasets import movielens

    data = movielens.load(get_settings())
    len(data.movies), len(data.ratings)   # (9742, 100836)
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from aiweb.config import Settings
from aiweb.datasets._base import (
    DatasetInfo,
    DatasetSpec,
    DatasetSplits,
    _complete,
    _download,
    read_text,
)
from aiweb.errors import DataFormatError

__all__ = [
    "INFO",
    "NAME",
    "SPEC",
    "URL",
    "Movie",
    "MovieLensData",
    "Rating",
    "load",
    "load_directory",
    "locate",
]

NAME = "movielens_latest_small"
URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
FILES = ("ratings.csv", "movies.csv", "tags.csv", "links.csv")
NO_GENRES = "(no genres listed)"

INFO = DatasetInfo(
    name=NAME,
    task="recommendation",
    description=(
        "MovieLens ml-latest-small (GroupLens, 2018-09-26): 100,836 star ratings and 3,683 "
        "tags by 610 users on 9,742 movies."
    ),
    directory=NAME,
    url=URL,
    license=(
        "GroupLens usage license: research use only, acknowledge the dataset, no commercial "
        "use without permission; redistribution only under the same terms."
    ),
    labels=(),
    caveats=(
        "A 'development' release that GroupLens regenerates over time; the shared copy is the "
        "2018-09-26 one (see SOURCE.md for checksums).",
        "Every user has at least 20 ratings; 9,724 of the 9,742 movies are rated, many once.",
        "Many ratings of one user share a timestamp (rated in one sitting): order within a "
        "timestamp is by movie id, as published.",
        "Not for commercial products: use it for development and benchmarks only.",
    ),
)


@dataclass(frozen=True)
class Movie:
    """One row of ``movies.csv`` with the tags users gave the movie.

    Attributes:
        movie_id: MovieLens id as a string (``"1"``).
        title: title with the year in parentheses (``"Toy Story (1995)"``).
        genres: genre names, in file order; empty for ``(no genres listed)``.
        tags: distinct tags from ``tags.csv`` (case-folded duplicates dropped), first seen
            first.
    """

    movie_id: str
    title: str
    genres: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Rating:
    """One row of ``ratings.csv``.

    Attributes:
        user_id: MovieLens user id as a string.
        movie_id: movie id as a string.
        rating: stars in [0.5, 5.0].
        timestamp: Unix seconds, UTC.
    """

    user_id: str
    movie_id: str
    rating: float
    timestamp: int


@dataclass(frozen=True)
class MovieLensData:
    """The parsed dataset.

    Attributes:
        movies: 9,742 movies in file order.
        ratings: 100,836 ratings in file order (by user, then movie).
        n_tags: rows of ``tags.csv``.
        sha256: sha256 hex digest over the bytes of ``movies.csv``, ``ratings.csv`` and
            ``tags.csv``, in that order.
    """

    movies: list[Movie]
    ratings: list[Rating]
    n_tags: int
    sha256: str


def _rows(path: Path, header: tuple[str, ...], digest: hashlib._Hash) -> list[list[str]]:
    text = read_text(path)
    digest.update(text.encode("utf-8"))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader)
    except StopIteration:
        raise DataFormatError(
            f"{path}: file is empty (expected header {','.join(header)})"
        ) from None
    if tuple(c.strip() for c in first) != header:
        raise DataFormatError(f"{path}: line 1: expected header {','.join(header)}, found {first}")
    rows: list[list[str]] = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise DataFormatError(
                f"{path}: line {reader.line_num}: expected {len(header)} fields, found {len(row)}"
            )
        rows.append(row)
    return rows


def load_directory(directory: Path) -> MovieLensData:
    """Parse ``movies.csv``, ``ratings.csv`` and ``tags.csv`` in ``directory``.

    Args:
        directory: folder laid out as ``shared/data/movielens_latest_small``.

    Returns:
        The movies (with their tags) and ratings.

    Raises:
        DataFormatError: a file is missing, not UTF-8, has the wrong header, a row with the
            wrong number of fields, or a rating/timestamp that is not a number (the message
            names file and line).
    """
    digest = hashlib.sha256()
    movie_rows = _rows(directory / "movies.csv", ("movieId", "title", "genres"), digest)
    rating_rows = _rows(
        directory / "ratings.csv", ("userId", "movieId", "rating", "timestamp"), digest
    )
    tag_rows = _rows(directory / "tags.csv", ("userId", "movieId", "tag", "timestamp"), digest)
    tags: dict[str, dict[str, str]] = {}
    for _user, movie_id, tag, _ts in tag_rows:
        clean = " ".join(tag.split())
        if clean:
            tags.setdefault(movie_id, {}).setdefault(clean.casefold(), clean)
    movies = [
        Movie(
            movie_id=movie_id,
            title=title.strip(),
            genres=tuple(g for g in genres.split("|") if g and g != NO_GENRES),
            tags=tuple(tags.get(movie_id, {}).values()),
        )
        for movie_id, title, genres in movie_rows
    ]
    ratings: list[Rating] = []
    path = directory / "ratings.csv"
    for number, (user_id, movie_id, rating, timestamp) in enumerate(rating_rows, start=2):
        try:
            ratings.append(Rating(user_id, movie_id, float(rating), int(timestamp)))
        except ValueError:
            raise DataFormatError(
                f"{path}: line {number}: rating and timestamp must be numbers, "
                f"found {rating!r}, {timestamp!r}"
            ) from None
    return MovieLensData(
        movies=movies, ratings=ratings, n_tags=len(tag_rows), sha256=digest.hexdigest()
    )


def _not_labeled(directory: Path) -> DatasetSplits:
    raise DataFormatError(
        f"{NAME} holds ratings, not labeled texts: load it with aiweb.datasets.movielens.load"
    )


SPEC = DatasetSpec(
    info=INFO,
    files=FILES,
    members={name: f"ml-latest-small/{name}" for name in FILES},
    parse=_not_labeled,
)


def locate(settings: Settings, *, url: str | None = None, progress: bool = True) -> Path:
    """Find the dataset's directory: ``AIWEB_DATA_HOME/movielens_latest_small/``, then the
    cache, else download GroupLens' zip archive into the cache.

    Args:
        settings: supplies ``data_home`` and ``datasets_cache_dir``.
        url: archive to download instead of the canonical one (mirrors, tests).
        progress: show a transient download progress bar on stderr.

    Returns:
        The directory holding the four CSV files.

    Raises:
        DatasetUnavailableError: not on disk and the download failed.
    """
    if settings.data_home is not None and _complete(settings.data_home / NAME, FILES):
        return settings.data_home / NAME
    cached = settings.datasets_cache_dir / NAME
    if _complete(cached, FILES):
        return cached
    _download(SPEC, settings, url or URL, progress=progress)
    return cached


def load(settings: Settings, *, url: str | None = None, progress: bool = True) -> MovieLensData:
    """Locate (downloading if needed) and parse the dataset.

    Raises:
        DatasetUnavailableError: not on disk and the download failed.
        DataFormatError: a file is malformed.
    """
    return load_directory(locate(settings, url=url, progress=progress))
