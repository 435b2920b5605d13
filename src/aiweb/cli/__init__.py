"""The ``aiweb`` command line (Typer). Heavy imports happen inside the commands."""

from __future__ import annotations

import typer

from aiweb.cli import (
    _common,
    _typer_params,
    accounts,
    assistants,
    collections,
    datasets,
    db,
    documents,
    embeddings,
    images,
    info,
    jobs,
    keys,
    models,
    predict,
    recommend,
    rollout,
    screen,
    serve,
    train,
    train_entities,
    train_tabular,
)

_typer_params.install()  # options not given need no pydantic: see the module

app = typer.Typer(
    name="aiweb",
    help="Self-hosted AI features for web applications: train, version, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=info.show_version,
        is_eager=True,
        help="Print aiweb's version and exit.",
    ),
) -> None:
    pass


app.add_typer(train.app, name="train")
train_tabular.register(train.app)
train_entities.register(train.app)
app.add_typer(models.app, name="models")
app.add_typer(rollout.app, name="rollout")
app.add_typer(datasets.app, name="datasets")
app.add_typer(documents.app, name="documents")
app.add_typer(images.app, name="images")
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(jobs.app, name="jobs")
app.add_typer(recommend.import_app, name="import")
app.add_typer(recommend.evaluate_app, name="evaluate")
app.add_typer(accounts.app, name="users")
app.add_typer(embeddings.app, name="embeddings")
app.add_typer(collections.app, name="collections")
app.add_typer(assistants.app, name="assistants")
app.command("info")(info.info)
app.command("serve")(serve.serve)
app.command("demo")(serve.demo)
app.command("predict")(predict.predict)
screen.register(app)
app.command("worker")(jobs.worker)
app.command("scheduler")(jobs.scheduler)


def main() -> None:
    """Console-script entry point."""
    _common.freeze_start_up = True  # this process is the command's own
    app()


__all__ = [
    "accounts",
    "app",
    "assistants",
    "collections",
    "datasets",
    "db",
    "documents",
    "embeddings",
    "grpc_server",
    "images",
    "info",
    "jobs",
    "keys",
    "main",
    "models",
    "predict",
    "recommend",
    "rollout",
    "screen",
    "serve",
    "train",
    "train_entities",
    "train_tabular",
]
