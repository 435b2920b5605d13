"""Every AiwebError subclass lives in aiweb.errors and is drawn in its docstring tree."""

from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import aiweb
from aiweb import errors
from aiweb.errors import AiwebError

#: Not imported by the walk: the CLI (Typer commands, imports everything lazily) and the
#: Alembic environment (runs only inside ``alembic``); neither defines an error.
SKIPPED = ("aiweb.__main__", "aiweb.cli", "aiweb.db.migrations")

#: One line of the tree: box-drawing indent, the class name, an optional ``(note)``.
TREE_LINE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Za-z_]\w*)(?: \((?P<note>.*)\))?$")


def _import_all(package: ModuleType) -> None:
    """Import every module under ``package`` except :data:`SKIPPED`.

    A module whose optional third-party dependency is missing (torch, onnx …) is left
    out; a broken import of aiweb code fails the test.
    """
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name.startswith(SKIPPED):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:
            if exc.name is None or exc.name == "aiweb" or exc.name.startswith("aiweb."):
                raise
            continue
        if info.ispkg:
            _import_all(module)


def _subclasses(cls: type[AiwebError]) -> set[type[AiwebError]]:
    found: set[type[AiwebError]] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _subclasses(sub)
    return found


def _aiweb_errors() -> set[type[AiwebError]]:
    """Every subclass of AiwebError defined in aiweb (not in a test module), but the
    Python SDK's mirror of the tree (``aiweb.client.errors``, checked by
    ``tests/unit/test_client_sdk.py``)."""
    _import_all(aiweb)
    return {
        cls
        for cls in _subclasses(AiwebError)
        if (cls.__module__ == "aiweb" or cls.__module__.startswith("aiweb."))
        and not cls.__module__.startswith("aiweb.client.")
    }


def _tree() -> dict[str, tuple[str | None, str | None]]:
    """The docstring tree as ``{name: (parent name, note)}``."""
    doc = errors.__doc__ or ""
    lines = doc.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0].splitlines()
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[str] = []
    for line in lines:
        match = TREE_LINE.match(line)
        assert match, f"not a tree line: {line!r}"
        depth = (len(match["indent"]) - 4) // 4
        del stack[depth:]
        assert match["name"] not in tree, f"{match['name']} drawn twice"
        tree[match["name"]] = (stack[-1] if stack else None, match["note"])
        stack.append(match["name"])
    return tree


def test_every_error_is_defined_in_aiweb_errors() -> None:
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _aiweb_errors()
        if cls.__module__ != "aiweb.errors"
    )
    assert elsewhere == []


def test_every_error_is_drawn_under_its_base() -> None:
    tree = _tree()
    assert tree["AiwebError"] == (None, "500")
    for cls in _aiweb_errors():
        assert cls.__name__ in tree, f"{cls.__name__} is missing from the errors.py tree"
        parent, note = tree[cls.__name__]
        assert parent == cls.__bases__[0].__name__, f"{cls.__name__} is drawn under {parent}"
        status = re.match(r"\d{3}", note or "")
        if status:
            assert int(status[0]) == cls.status, f"{cls.__name__} is drawn with {status[0]}"


def test_the_tree_draws_only_classes_of_aiweb_errors() -> None:
    for name in _tree():
        cls = getattr(errors, name, None)
        assert isinstance(cls, type), f"{name} is drawn but not defined in aiweb.errors"
        assert issubclass(cls, AiwebError)
