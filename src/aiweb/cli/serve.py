"""``aiweb serve`` and ``aiweb demo``."""

from __future__ import annotations

import os

import typer

from aiweb.cli._common import err, friendly_errors

DEMO_MODELS = (("sentiment", "sst2"), ("spam", "sms_spam"))


def _workers(value: str) -> int:
    from aiweb.errors import InvalidInputError

    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not value.isdigit() or int(value) < 1:
        raise InvalidInputError(f"--workers takes a positive integer or 'auto', not {value!r}")
    return int(value)


def run_server(host: str, port: int, workers: int) -> None:
    """Migrate the database once, then run uvicorn with ``workers`` processes."""
    import uvicorn

    from aiweb.app import create_app
    from aiweb.config import get_settings
    from aiweb.db.migrate import upgrade
    from aiweb.db.session import make_engine

    settings = get_settings()
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    err.print(
        f"aiweb serving on [bold]http://{host}:{port}[/] — API docs at http://{host}:{port}/docs"
    )
    if workers == 1:
        uvicorn.run(
            create_app(settings, migrate=False),
            host=host,
            port=port,
            log_level="info",
            timeout_graceful_shutdown=30,
        )
    else:
        uvicorn.run(
            "aiweb.app:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_graceful_shutdown=30,
        )


@friendly_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    workers: str = typer.Option("1", help="Worker processes, or 'auto' for one per core."),
) -> None:
    """Serve the API: migrate the database, load and warm the production models, listen."""
    run_server(host, port, _workers(workers))


@friendly_errors
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve when trained."),
) -> None:
    """Fetch SST-2 and the SMS Spam Collection, train `sentiment` and `spam`, and serve them."""
    from aiweb.cli.train import run_training

    for model, dataset in DEMO_MODELS:
        err.rule(f"{model} ← {dataset}")
        run_training(
            model,
            dataset=dataset,
            data=None,
            text_column="text",
            label_column="label",
            eval_data=None,
            test_size=0.2,
            alias=None,
            params={},
            skip_if_same=True,
        )
    url = f"http://{host}:{port}"
    err.rule("ready")
    err.print(f"Open {url}/docs for the API. Try:\n", highlight=False)
    err.print(
        f"  curl -s -X POST {url}/v1/models/sentiment/predict "
        "-H 'content-type: application/json' "
        """-d '{"inputs":["a gorgeous, witty, seductive movie"]}'\n""",
        highlight=False,
        soft_wrap=True,
    )
    if serve_after:
        run_server(host, port, 1)
