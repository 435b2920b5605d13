"""Typer without pydantic for options that were not given (issue #19: start-up time).

Typer 0.29 coerces every parameter through a pydantic ``TypeAdapter``, built when the
parameter is first processed: also for an option that was not given (value ``None``),
whose coercion never uses the adapter (``None`` stays ``None``, or ``()`` for a list).
The ``--help`` option of the group and of each command on a command line is such an
option, so every command imported pydantic and built three adapters before it ran
(with pydantic's look-up of plugins in every installed package's entry points).

:func:`install` makes Typer coerce a missing value the way it does anyway, without
building the adapter; a given value still gets the adapter, built on first use as
before. Nothing changes with a Typer that lacks these internals.
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    """Patch ``typer.core._TyperParameter.process_value`` (once) as the module says."""
    try:
        from typer._coercion import PassThroughRuntimeParam
        from typer.core import _TyperParameter
    except ImportError:  # another Typer
        return
    original = _TyperParameter.process_value
    if getattr(original, "_aiweb_lazy_adapter", False) or not hasattr(
        _TyperParameter, "get_runtime_param"
    ):
        return

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        if value is not None or getattr(self, "_runtime_param", True) is not None:
            return original(self, ctx, value)
        # RuntimeParam.coerce answers None before it looks at its adapter: lend it one
        # that has none, for this call only
        descriptor = self.type_descriptor
        self._runtime_param = PassThroughRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
        try:
            return original(self, ctx, value)
        finally:
            self._runtime_param = None

    process_value._aiweb_lazy_adapter = True  # type: ignore[attr-defined]
    setattr(_TyperParameter, "process_value", process_value)  # noqa: B010
