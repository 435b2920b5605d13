"""``aiweb predict NAME TEXT …``: classify in this process, from the registry."""

from __future__ import annotations

import typer
from rich.table import Table

from aiweb.cli._common import friendly_errors, open_registry, out


@friendly_errors
def predict(
    name: str = typer.Argument(..., help="sentiment, sentiment@staging or sentiment:3."),
    texts: list[str] = typer.Argument(..., help="Texts to classify."),
) -> None:
    """Print the label and scores of each TEXT."""
    import anyio

    from aiweb.config import get_settings
    from aiweb.registry.entities import ModelRef
    from aiweb.registry.loader import ModelLoader

    with open_registry() as registry:
        loader = ModelLoader(registry, get_settings().serving)

        async def run() -> tuple[str, list[str], list[list[float]]]:
            model = await loader.get(ModelRef.parse(name))
            try:
                proba = await model.predict_proba(list(texts))
            finally:
                await loader.aclose()
            return (
                f"{model.version.name}:{model.version.version}",
                model.runtime.labels,
                proba.tolist(),
            )

        ref, labels, rows = anyio.run(run)
    table = Table("text", "label", *labels, title=ref)
    for text, row in zip(texts, rows, strict=True):
        best = labels[max(range(len(row)), key=row.__getitem__)]
        table.add_row(text[:80], f"[bold]{best}[/]", *(f"{p:.3f}" for p in row))
    out.print(table)
