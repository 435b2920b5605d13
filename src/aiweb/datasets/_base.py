"""Core types of :mod:`aiweb.datasets` and the resolve / download / extract logic.

A built-in dataset is described by a :class:`DatasetSpec`: what ``aiweb datasets list``
shows (:class:`DatasetInfo`), the files it needs inside its directory, where each file
sits in the publisher's zip archive, and a parser turning the directory into
:class:`DatasetSplits`.

:func:`aiweb.datasets.catalog.locate` finds a dataset's directory, in this order:

1. ``settings.data_home/<directory>/`` when all the dataset's files are there
   (``AIWEB_DATA_HOME``, laid out as ``shared/data``);
2. ``settings.datasets_cache_dir/<directory>/`` when all the files are there;
3. otherwise it downloads the publisher's zip archive (streamed with httpx, rich progress
   bar on stderr), extracts only the needed members into a temporary directory next to
   the cache and renames it into place, so a half-finished download is never seen as a
   complete dataset.

Datasets published as plain files in a repository (CLINC150, Banking77 …) name each file
under a base URL pinned to a commit (:attr:`DatasetSpec.downloads`) instead of a zip
archive; a dataset may also record the sha256 of each file as the shared copy holds it
(:attr:`DatasetSpec.sha256`, from its ``SOURCE.md``), and a download whose files differ
is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from aiweb.config import Settings
from aiweb.errors import DataFormatError, DatasetUnavailableError

__all__ = [
    "DatasetInfo",
    "DatasetSpec",
    "DatasetSplits",
    "LabeledTexts",
    "iter_lines",
    "read_text",
]

_CONNECT_TIMEOUT_S = 15.0
_READ_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 16


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class LabeledTexts:
    """Texts and their labels, row-aligned.

    Attributes:
        texts: ``n`` texts.
        labels: ``n`` label names (``labels[i]`` is the label of ``texts[i]``).

    Raises:
        ValueError: when ``texts`` and ``labels`` differ in length.
    """

    texts: list[str]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"texts and labels differ in length: {len(self.texts)} != {len(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def sha256(self) -> str:
        """Fingerprint of the rows, in order.

        Returns:
            The sha256 hex digest of the UTF-8 bytes of ``json.dumps([text, label],
            ensure_ascii=False) + "\\n"`` for each row, concatenated in order.
        """
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels, strict=True):
            digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()


@dataclass(frozen=True)
class DatasetSplits:
    """A loaded dataset: its training rows and, when published, its evaluation split.

    Attributes:
        name: dataset name, e.g. ``"sst2"`` or ``"sms_spam"``.
        train: the training rows (all rows when the dataset has no official split).
        eval: the official evaluation split (SST-2: GLUE dev), else ``None``.
        eval_name: name of the evaluation split (``"dev"`` for SST-2), else ``None``.
        labels: sorted label names found in ``train`` and ``eval``.
    """

    name: str
    train: LabeledTexts
    eval: LabeledTexts | None
    eval_name: str | None
    labels: list[str]

    def sha256(self) -> str:
        """Fingerprint of both splits.

        Returns:
            sha256 hex digest of ``"train:<train.sha256()>\\n"`` followed by
            ``"<eval_name>:<eval.sha256()>\\n"`` when there is an evaluation split.
        """
        digest = hashlib.sha256()
        digest.update(f"train:{self.train.sha256()}\n".encode())
        if self.eval is not None:
            digest.update(f"{self.eval_name or 'eval'}:{self.eval.sha256()}\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class DatasetInfo:
    """What ``aiweb datasets list`` shows about a built-in dataset.

    Attributes:
        name: name used on the command line and in the API (``"sst2"``).
        task: ``"text-classification"``.
        description: one-sentence description.
        directory: folder name under the data home and the cache (``"sst2"``).
        url: the publisher's canonical zip archive, or the base URL (pinned to a commit)
            of its files when it is published as plain files in a repository.
        license: license, as stated by the publisher.
        labels: label names, sorted.
        caveats: things to know before training or evaluating on it.
    """

    name: str
    task: str
    description: str
    directory: str
    url: str
    license: str
    labels: tuple[str, ...]
    caveats: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """How to obtain and parse a built-in dataset.

    Attributes:
        info: the public description.
        files: file names needed inside ``info.directory`` (e.g. ``("train.tsv", "dev.tsv")``).
        members: for each file of ``files``, its preferred path inside the zip archive; the
            member is otherwise looked up by basename.
        parse: reads the dataset directory and returns its splits (labeled texts); raises
            :class:`~aiweb.errors.DataFormatError` on malformed files. ``None`` for a
            dataset of another shape, which the task that trains on it reads from
            :func:`~aiweb.datasets.catalog.locate`'s folder.
        downloads: for datasets published as plain files rather than a zip archive:
            file name to download -> its path under ``info.url`` (a base URL). Empty for
            zip archives.
        prepare: run on the downloaded files before they are checked and installed
            (e.g. drop splits the shared copy leaves out); must leave exactly ``files``.
        sha256: file name -> expected sha256 hex digest of the file as installed; a
            download that does not match is refused.
    """

    info: DatasetInfo
    files: tuple[str, ...]
    members: dict[str, str]
    parse: Callable[[Path], DatasetSplits] | None
    downloads: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    sha256: dict[str, str] = field(default_factory=dict)


def plain_files_spec(
    info: DatasetInfo, files: tuple[str, ...], sha256: dict[str, str]
) -> DatasetSpec:
    """The spec of a dataset published as plain files under ``info.url`` and read by the
    task that trains on it (``parse`` is ``None``): found, downloaded and checked like the
    others; :func:`~aiweb.datasets.catalog.load`, which gives labeled texts, refuses it."""
    return DatasetSpec(
        info=info,
        files=files,
        members={},
        parse=None,
        downloads={name: name for name in files},
        sha256=sha256,
    )


# --------------------------------------------------------------------------- helpers for parsers


def read_text(path: Path) -> str:
    """Read a whole file as UTF-8 (a leading BOM is dropped).

    Args:
        path: the file.

    Returns:
        The decoded text, line ends untouched.

    Raises:
        DataFormatError: the file cannot be read, or is not UTF-8 (names the line).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path.name}: cannot read file: {exc.strerror or exc}") from None
    return decode_utf8(data, f"{path.name}: ")


def decode_utf8(data: bytes, where: str = "") -> str:
    """``data`` as UTF-8 text, a leading BOM skipped.

    Args:
        data: the file's bytes.
        where: put before the message (``"train.csv: "``).

    Raises:
        DataFormatError: a UTF-16 file (told by its BOM), or bytes that are not UTF-8,
            naming the line and the byte.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataFormatError(f"{where}the file is UTF-16; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(
            f"{where}line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the "
            "file as UTF-8"
        ) from None


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """Split text into physical lines, handling LF and CRLF line ends.

    Only ``\\n`` ends a line (a trailing ``\\r`` is dropped). Unlike :meth:`str.splitlines`,
    characters such as U+0085 or U+2028 inside a line do not split it.

    Args:
        text: the whole file.

    Yields:
        ``(line_number, line)`` pairs, numbered from 1, without the line end. A final
        empty string after the last line end is not yielded.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        yield number, line[:-1] if line.endswith("\r") else line


def splits(
    name: str, train: LabeledTexts, eval_: LabeledTexts | None, eval_name: str | None
) -> DatasetSplits:
    """Build :class:`DatasetSplits`, computing the sorted label set of both splits."""
    labels = set(train.labels)
    if eval_ is not None:
        labels.update(eval_.labels)
    return DatasetSplits(
        name=name, train=train, eval=eval_, eval_name=eval_name, labels=sorted(labels)
    )


# --------------------------------------------------------------------------- download


def _complete(directory: Path, files: tuple[str, ...]) -> bool:
    return all((directory / name).is_file() for name in files)


class _DownloadFailed(Exception):
    """Internal: one-line reason a download failed."""


def _offline_hint(spec: DatasetSpec, settings: Settings) -> str:
    directory = spec.info.directory
    listed = ", ".join(f"{directory}/{name}" for name in spec.files)
    cache = settings.datasets_cache_dir / directory
    hint = (
        f"To proceed offline, set AIWEB_DATA_HOME to a folder containing {listed}, "
        f"or put {', '.join(spec.files)} in {cache}"
    )
    if settings.data_home is not None:
        hint += f" (AIWEB_DATA_HOME={settings.data_home} has no complete {directory}/ folder.)"
    return hint


def _download(spec: DatasetSpec, settings: Settings, url: str, *, progress: bool) -> None:
    cache_root = settings.datasets_cache_dir
    target = cache_root / spec.info.directory
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{spec.info.directory}.", dir=cache_root))
    except OSError as exc:
        raise DatasetUnavailableError(
            f"Cannot download dataset {spec.info.name!r}: cache directory {cache_root} "
            f"is not writable ({exc.strerror or exc}).\n{_offline_hint(spec, settings)}"
        ) from None
    try:
        archive = work / "archive.zip"
        staged = work / spec.info.directory
        try:
            if spec.downloads:
                _fetch_files(spec, url, staged, progress=progress)
            else:
                _stream_to_file(url, archive, label=spec.info.name, progress=progress)
                _extract(spec, archive, staged)
            _check_sha256(spec, staged)
        except _DownloadFailed as exc:
            raise DatasetUnavailableError(
                f"Cannot download dataset {spec.info.name!r} from {url}: {exc}\n"
                f"{_offline_hint(spec, settings)}"
            ) from None
        try:
            _install(staged, target, spec.files)
        except OSError as exc:
            raise DatasetUnavailableError(
                f"Cannot store dataset {spec.info.name!r} in {target}: "
                f"{exc.strerror or exc}.\n{_offline_hint(spec, settings)}"
            ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stream_to_file(url: str, dest: Path, *, label: str, progress: bool) -> None:
    timeout = httpx.Timeout(_READ_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with (
            httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response,
            Progress(
                *columns,
                console=Console(stderr=True),
                transient=True,
                disable=not progress,
            ) as bar,
            dest.open("wb") as out,
        ):
            if response.status_code != httpx.codes.OK:
                phrase = response.reason_phrase or "error"
                raise _DownloadFailed(f"HTTP {response.status_code} {phrase}")
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            task = bar.add_task(f"Downloading {label}", total=total)
            for chunk in response.iter_bytes(_CHUNK_BYTES):
                out.write(chunk)
                bar.advance(task, len(chunk))
    except httpx.InvalidURL as exc:
        raise _DownloadFailed(f"invalid URL ({exc})") from None
    except httpx.UnsupportedProtocol as exc:
        raise _DownloadFailed(f"unsupported URL ({exc})") from None
    except httpx.TimeoutException:
        raise _DownloadFailed("the server did not answer in time (timeout)") from None
    except httpx.ConnectError as exc:
        raise _DownloadFailed(f"connection failed ({_one_line(exc)}); are you offline?") from None
    except httpx.HTTPError as exc:
        raise _DownloadFailed(f"{type(exc).__name__} ({_one_line(exc)})") from None
    except OSError as exc:
        raise _DownloadFailed(f"cannot write {dest} ({exc.strerror or exc})") from None


def _fetch_files(spec: DatasetSpec, base_url: str, staged: Path, *, progress: bool) -> None:
    """Download each of ``spec.downloads`` from under ``base_url``, then ``spec.prepare``."""
    staged.mkdir()
    base = base_url.rstrip("/")
    for file_name, path in spec.downloads.items():
        _stream_to_file(
            f"{base}/{path}",
            staged / file_name,
            label=f"{spec.info.name} {file_name}",
            progress=progress,
        )
    if spec.prepare is not None:
        try:
            spec.prepare(staged)
        except (DataFormatError, OSError, ValueError) as exc:
            raise _DownloadFailed(
                f"cannot prepare the downloaded files ({_one_line(exc)})"
            ) from None
    missing = [name for name in spec.files if not (staged / name).is_file()]
    if missing:
        raise _DownloadFailed(f"the download did not give {', '.join(missing)}")


def _check_sha256(spec: DatasetSpec, staged: Path) -> None:
    for file_name, expected in spec.sha256.items():
        digest = hashlib.sha256()
        with (staged / file_name).open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK_BYTES), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise _DownloadFailed(
                f"{file_name} has sha256 {digest.hexdigest()[:12]}…, expected "
                f"{expected[:12]}… (a changed or corrupted file)"
            )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _find_member(names: list[str], file_name: str, preferred: str | None) -> str | None:
    if preferred is not None and preferred in names:
        return preferred
    candidates = [
        name
        for name in names
        if not name.endswith("/")
        and PurePosixPath(name).name == file_name
        and "__MACOSX" not in PurePosixPath(name).parts
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda name: (name.count("/"), name))


def _extract(spec: DatasetSpec, archive: Path, staged: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            staged.mkdir()
            for file_name in spec.files:
                member = _find_member(names, file_name, spec.members.get(file_name))
                if member is None:
                    raise _DownloadFailed(f"the archive has no member named {file_name!r}")
                with zf.open(member) as src, (staged / file_name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK_BYTES)
    except zipfile.BadZipFile:
        raise _DownloadFailed("the response is not a valid zip archive") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, RuntimeError) as exc:
        raise _DownloadFailed(f"cannot extract the archive ({_one_line(exc)})") from None
    except OSError as exc:
        raise _DownloadFailed(f"cannot extract the archive ({exc.strerror or exc})") from None


def _install(staged: Path, target: Path, files: tuple[str, ...]) -> None:
    """Move the staged directory into place; fill in missing files of a partial target."""
    try:
        staged.rename(target)
        return
    except OSError:
        if not target.is_dir():
            raise
    # The target exists (partial files put there by hand, or a concurrent download):
    # move in each missing file with an atomic rename.
    for name in files:
        if not (target / name).is_file():
            (staged / name).replace(target / name)
