"""Make the OpenAPI document state the rules every request is held to, not only the
ones each route's models spell out, so that a request valid by the schema is accepted.

Two kinds of facts are added to the document :meth:`fastapi.FastAPI.openapi` builds
(after :func:`aiweb.api.problems.document_problems`):

* **What a column can hold** (:mod:`aiweb.api.limits` refuses the rest with a 422 before
  any route runs): in a JSON body no string or object key holds a NUL character, and no
  integer is outside signed 64 bits; no path or query parameter holds a NUL character.
  Each string schema without a pattern that already excludes NUL gets one that does
  (:data:`NO_NUL`), each integer the 64-bit bounds it lacks, and each value of any type
  (``Any``, a free-form object's values) becomes :data:`JSON_VALUE` (a ``$ref`` to the
  ``JsonValue`` component, which says the same recursively).
* **Bounds set by settings**: a schema carrying :data:`SETTING_BOUNDS` (``{"maximum":
  "AIWEB_SEARCH__MAX_TOP_K"}``, put there with :func:`setting_bounds`) gets each keyword
  set to that setting's value in this app's settings, so a deployment that raises
  ``AIWEB_SEARCH__MAX_TOP_K`` documents the larger maximum.

Install with :func:`install` after :func:`aiweb.api.problems.install`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from aiweb.api.limits import INT64_MAX, INT64_MIN
from aiweb.config import Settings

NO_NUL = r"^[^\x00]*$"
"""The pattern of a string without a NUL character (PostgreSQL text cannot hold one)."""

SETTING_BOUNDS = "x-aiweb-setting-bounds"
"""Schema extension: ``{keyword: setting}``, the settings that set a value's bounds."""

JSON_VALUE_NAME = "JsonValue"
JSON_VALUE = {"$ref": f"#/components/schemas/{JSON_VALUE_NAME}"}
"""Any JSON value a request may carry (the schema of ``Any``)."""

_JSON_VALUE_SCHEMA: dict[str, Any] = {
    "title": JSON_VALUE_NAME,
    "description": "Any JSON value a database column can hold: no NUL character in a string "
    "or an object key, and no integer outside signed 64 bits.",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        {"type": "number", "not": {"type": "integer"}},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": JSON_VALUE},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": JSON_VALUE,
        },
    ],
}

#: keywords that only annotate a schema: one with nothing else admits any value
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "example", "deprecated"})
#: escapes that may name a NUL character, or a class of characters that holds it
_WIDE_ESCAPE = re.compile(r"\\[SWDxuc0]")
_CLASS = re.compile(r"\[[^\]]*\]")


def setting_bounds(**bounds: str) -> dict[str, Any]:
    """``json_schema_extra`` for a field whose bounds are settings.

    Example: ``Field(10, ge=1, json_schema_extra=setting_bounds(maximum=
    "AIWEB_SEARCH__MAX_TOP_K"))``; the served document then says ``"maximum": 100`` (the
    setting's value) beside the extension naming the setting.

    Args:
        bounds: JSON Schema keyword (``maximum``, ``maxLength``, ``maxItems`` …) to the
            name of the environment variable of the setting that sets it.
    """
    return {SETTING_BOUNDS: dict(bounds)}


def setting_value(settings: Settings, env_name: str) -> Any:
    """The value of the setting ``AIWEB_SECTION__FIELD`` (or ``AIWEB_FIELD``) names.

    Raises:
        KeyError: no such setting.
    """
    if not env_name.startswith("AIWEB_"):
        raise KeyError(env_name)
    value: Any = settings
    for part in env_name.removeprefix("AIWEB_").split("__"):
        if not isinstance(value, BaseModel) or part.lower() not in type(value).model_fields:
            raise KeyError(env_name)
        value = getattr(value, part.lower())
    return value


def document_facts(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Add the facts of the module docs to an OpenAPI document (in place).

    Args:
        schema: the document (already through
            :func:`aiweb.api.problems.document_problems`).
        settings: the app's settings, for the bounds they set.

    Returns:
        ``schema``.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _apply_setting_bounds(schema, settings)
    walker = _Walker(components)
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            if not isinstance(op, dict):
                continue
            for param in op.get("parameters", []):
                if param.get("in") in ("path", "query") and isinstance(param.get("schema"), dict):
                    walker.strings_only(param["schema"])
            for media_type, content in op.get("requestBody", {}).get("content", {}).items():
                if _is_json(media_type) and isinstance(content.get("schema"), dict):
                    content["schema"] = walker.body(content["schema"])
    if walker.used_json_value:
        components[JSON_VALUE_NAME] = _JSON_VALUE_SCHEMA
    return schema


def install(app: FastAPI, settings: Settings) -> None:
    """Document the facts of the module docs in ``app``'s OpenAPI document (once per
    document built)."""
    build = app.openapi
    documented: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = build()
        if documented != [id(schema)]:
            document_facts(schema, settings)
            documented[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_json(media_type: str) -> bool:
    base = media_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def _apply_setting_bounds(node: Any, settings: Settings) -> None:
    if isinstance(node, dict):
        bounds = node.get(SETTING_BOUNDS)
        if isinstance(bounds, dict):
            for keyword, env_name in bounds.items():
                node[keyword] = setting_value(settings, env_name)
        for value in node.values():
            _apply_setting_bounds(value, settings)
    elif isinstance(node, list):
        for value in node:
            _apply_setting_bounds(value, settings)


def _excludes_nul(pattern: str) -> bool:
    """Whether ``pattern`` surely matches no string holding a NUL character (a
    conservative reading: anchored, no ``.``, no negated class, no wide escape)."""
    if pattern == NO_NUL:
        return True
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    if "[^" in pattern or _WIDE_ESCAPE.search(pattern):
        return False
    return "." not in _CLASS.sub("", pattern)


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


class _Walker:
    """Adds the column facts to the schemas a request carries (components in place,
    each once)."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components
        self.seen: set[tuple[str, bool]] = set()
        self.used_json_value = False

    def _component(self, node: dict[str, Any], *, body: bool) -> None:
        ref = node.get("$ref")
        prefix = "#/components/schemas/"
        if isinstance(ref, str) and ref.startswith(prefix):
            name = ref.removeprefix(prefix)
            target = self.components.get(name)
            if isinstance(target, dict) and (name, body) not in self.seen:
                self.seen.add((name, body))
                if body:
                    self.body(target)
                else:
                    self.strings_only(target)

    def _no_nul(self, node: dict[str, Any]) -> None:
        if "enum" in node or "const" in node or "contentMediaType" in node:
            return
        if node.get("format") in ("binary", "byte"):
            return
        pattern = node.get("pattern")
        if pattern is None:
            node["pattern"] = NO_NUL
        elif not (isinstance(pattern, str) and _excludes_nul(pattern)):
            node.setdefault("allOf", []).append({"pattern": NO_NUL})

    def strings_only(self, node: dict[str, Any]) -> None:
        """A parameter's schema: its strings hold no NUL character."""
        self._component(node, body=False)
        if "string" in _types(node):
            self._no_nul(node)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                if isinstance(sub, dict):
                    self.strings_only(sub)
        if isinstance(node.get("items"), dict):
            self.strings_only(node["items"])

    def body(self, node: dict[str, Any]) -> dict[str, Any]:
        """A schema inside a JSON body; the schema to use instead (``JsonValue`` for one
        that admits anything)."""
        if not node.keys() - _ANNOTATIONS:
            self.used_json_value = True
            return {**node, **JSON_VALUE}
        self._component(node, body=True)
        types = _types(node)
        if "string" in types:
            self._no_nul(node)
        if "integer" in types:
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = INT64_MIN
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = INT64_MAX
        extra = node.get("additionalProperties", True)
        if "object" in types and extra is not False:
            node.setdefault("propertyNames", {"pattern": NO_NUL})
            if extra is True:
                self.used_json_value = True
                node["additionalProperties"] = JSON_VALUE
            elif isinstance(extra, dict):
                node["additionalProperties"] = self.body(extra)
        for key in ("properties", "patternProperties"):
            props = node.get(key)
            if isinstance(props, dict):
                for name, sub in props.items():
                    if isinstance(sub, dict):
                        props[name] = self.body(sub)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            subs = node.get(key)
            if isinstance(subs, list):
                node[key] = [self.body(s) if isinstance(s, dict) else s for s in subs]
        if "array" in types and "items" not in node:
            self.used_json_value = True
            node["items"] = JSON_VALUE
        elif isinstance(node.get("items"), dict):
            node["items"] = self.body(node["items"])
        return node
