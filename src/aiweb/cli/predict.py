"""``aiweb predict NAME TEXT …``: classify in this process, from the registry."""

from __future__ import annotations

import typer
from rich.table import Table

from aiweb.cli._common import friendly_errors, open_registry, out

#: Models with more labels print their best :data:`TOP_SCORES` scores, not one column each.
MAX_SCORE_COLUMNS = 8
TOP_SCORES = 3


@friendly_errors
def predict(
    name: str = typer.Argument(..., help="sentiment, sentiment@staging or sentiment:3."),
    texts: list[str] = typer.Argument(..., help="Texts to classify."),
) -> None:
    """Print the label and scores of each TEXT (an intent model with out-of-scope
    detection answers its `oos` label below its threshold)."""
    import anyio

    from aiweb.classification.loader import ModelLoader
    from aiweb.classification.rejection import decide
    from aiweb.config import get_settings
    from aiweb.registry.entities import ModelRef

    with open_registry() as registry:
        loader = ModelLoader(registry, get_settings().serving)

        async def run() -> tuple[str, list[str], list[str], list[list[float]]]:
            model = await loader.get(ModelRef.parse(name))
            try:
                proba = await model.predict_proba(list(texts))
            finally:
                await loader.aclose()
            return (
                f"{model.version.name}:{model.version.version}",
                model.runtime.labels,
                decide(model.runtime.labels, proba, model.rejection),
                proba.tolist(),
            )

        ref, labels, answered, rows = anyio.run(run)
    if len(labels) <= MAX_SCORE_COLUMNS:
        table = Table("text", "label", *labels, title=ref)
        for text, label, row in zip(texts, answered, rows, strict=True):
            table.add_row(text[:80], f"[bold]{label}[/]", *(f"{p:.3f}" for p in row))
    else:  # intent models: the best few scores of each text
        table = Table("text", "label", f"top {TOP_SCORES} scores", title=ref)
        for text, label, row in zip(texts, answered, rows, strict=True):
            best = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:TOP_SCORES]
            top = ", ".join(f"{labels[i]} {row[i]:.3f}" for i in best)
            table.add_row(text[:80], f"[bold]{label}[/]", top)
    out.print(table)
