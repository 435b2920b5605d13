"""``aiweb serve`` and ``aiweb demo``."""

from __future__ import annotations

import os

import typer

from aiweb.cli._common import err, friendly_errors, open_keys

DEMO_MODELS = (("sentiment", "sst2"), ("spam", "sms_spam"))


def _workers(value: str) -> int:
    from aiweb.errors import InvalidInputError

    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not value.isdigit() or int(value) < 1:
        raise InvalidInputError(f"--workers takes a positive integer or 'auto', not {value!r}")
    return int(value)


def prepare(host: str) -> str | None:
    """Checks and set-up before serving: refuse unsafe settings, migrate the database,
    make the secret key, and on first start create an admin key.

    Returns:
        The new admin key's secret on first start, else ``None``.
    """
    from aiweb.config import get_settings
    from aiweb.security.secrets import check_auth_binding, resolve_secret_key

    settings = get_settings()
    check_auth_binding(settings, host)
    resolve_secret_key(settings)
    with open_keys() as keys:
        return keys.ensure_admin_key() if settings.auth.enabled else None


def print_admin_key(secret: str, url: str) -> None:
    """Show the first-start admin key once, as Jupyter shows its token."""
    err.rule("first start")
    err.print(
        "An admin API key was created. It is shown only now; store it somewhere safe:\n\n"
        f"    [bold]{secret}[/]\n\n"
        f"Dashboard and API docs: {url}/docs (send it as 'Authorization: Bearer <key>').\n"
        "Create narrower keys with: aiweb keys create NAME --scopes predict",
        highlight=False,
        soft_wrap=True,
    )
    err.rule()


def run_server(host: str, port: int, workers: int, *, admin_secret: str | None = None) -> None:
    """Run uvicorn with ``workers`` processes (after :func:`prepare`)."""
    import uvicorn

    from aiweb.app import create_app
    from aiweb.config import get_settings

    settings = get_settings()
    url = f"http://{host}:{port}"
    if admin_secret:
        print_admin_key(admin_secret, url)
    err.print(f"aiweb serving on [bold]{url}[/]; API docs at {url}/docs")
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
    count = _workers(workers)
    run_server(host, port, count, admin_secret=prepare(host))


@friendly_errors
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve when trained."),
) -> None:
    """Fetch SST-2 and the SMS Spam Collection, train `sentiment` and `spam`, and serve them."""
    from aiweb.cli.train import run_training

    admin_secret = prepare(host)
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
    # a fresh predict-only key for the example, replacing the previous demo's
    with open_keys() as service:
        if any(k.name == "demo" for k in service.list()):
            service.delete("demo", actor="demo")
        _, demo_secret = service.create("demo", ["predict"], actor="demo")
    url = f"http://{host}:{port}"
    if admin_secret:
        print_admin_key(admin_secret, url)
    err.rule("ready")
    err.print(f"Open {url}/docs for the API. Try (a predict-only demo key):\n", highlight=False)
    err.print(
        f"  curl -s -X POST {url}/v1/models/sentiment/predict "
        f"-H 'authorization: Bearer {demo_secret}' "
        "-H 'content-type: application/json' "
        """-d '{"inputs":["a gorgeous, witty, seductive movie"]}'\n""",
        highlight=False,
        soft_wrap=True,
    )
    if serve_after:
        run_server(host, port, 1)
