"""``aiweb serve`` and ``aiweb demo``."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from aiweb.cli._common import err, friendly_errors, open_keys, open_registry

if TYPE_CHECKING:
    from aiweb.config import GrpcSettings, ServingSettings, Settings

DEMO_MODELS = (("sentiment", "sst2"), ("spam", "sms_spam"))

log = logging.getLogger(__name__)


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
        f"Dashboard: {url}/ (log in with this key). API docs: {url}/docs (send it as "
        "'Authorization: Bearer <key>').\n"
        "Create narrower keys with: aiweb keys create NAME --scopes predict",
        highlight=False,
        soft_wrap=True,
    )
    err.rule()


def check_port(host: str, port: int) -> None:
    """Fail before any banner when ``host:port`` cannot be listened on (another server
    holds it, or the address is not this machine's).

    Binds a socket as uvicorn will (``SO_REUSEADDR``, so a port left in ``TIME_WAIT`` by
    a stopped server passes) and closes it at once.

    Raises:
        ConflictError: the port is in use, or the address cannot be bound; the message
            says which and how to choose another port.
    """
    import errno
    import socket

    from aiweb.errors import ConflictError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(
                    f"port {port} on {host} is in use by another process (another `aiweb "
                    "serve`?): stop it, or serve on another port with --port "
                    "(make demo PORT=8080)"
                ) from None
            reason = exc.strerror or str(exc)
            raise ConflictError(f"cannot listen on {host}:{port}: {reason}") from None


def run_server(
    host: str,
    port: int,
    workers: int,
    *,
    admin_secret: str | None = None,
    access_log: bool = False,
    grpc_port: int | None = None,
) -> None:
    """Run uvicorn with ``workers`` processes (after :func:`prepare`).

    With ``grpc_port`` (else ``AIWEB_GRPC__PORT``), the Open Inference Protocol is also
    served over gRPC on ``host:grpc_port`` (:mod:`aiweb.cli.grpc_server`): by every
    worker, on the same port (``SO_REUSEPORT``: the kernel spreads the connections).

    Each worker loads and warms the production models in its lifespan, before uvicorn
    lets it accept connections. With several workers the supervisor process imports none
    of the app (it only watches the workers), so it stays small.
    """
    import uvicorn

    from aiweb.config import get_settings
    from aiweb.monitoring.logs import log_config
    from aiweb.serving.protocol import PROTOCOL, ConnectionLimits, configure

    settings = get_settings()
    configure(ConnectionLimits.from_settings(settings.serving))  # workers read $AIWEB_*
    url = f"http://{host}:{port}"
    check_port(host, port)  # before the banner: no "serving on" for a port in use
    grpc = _grpc_settings(settings, host, grpc_port)
    if admin_secret:
        print_admin_key(admin_secret, url)
    err.print(
        f"aiweb serving on [bold]{url}[/] with {workers} worker(s): dashboard at {url}/ "
        f"(an admin key or `aiweb users create NAME` logs in), API docs at {url}/docs"
    )
    if grpc.port is not None:
        tls = " (TLS)" if grpc.tls_cert_file else ""
        err.print(f"gRPC (Open Inference Protocol){tls} on [bold]{host}:{grpc.port}[/]")
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "log_config": log_config(settings.log_format, settings.log_level, access_log),
        "access_log": False,  # aiweb.access, written by the app, replaces uvicorn's
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        # header and body bounds, slow-client and keep-alive timeouts (AIWEB_SERVING__*)
        "http": PROTOCOL,
    }
    share_embedding_threads(workers)
    if workers == 1:
        from aiweb.app import create_app

        app = create_app(settings, migrate=False)
        if grpc.port is not None:  # grpcio is an extra: imported only when asked for
            from aiweb.cli.grpc_server import attach

            attach(app, host, grpc)
        uvicorn.run(app, **common)
        return
    if grpc.port is not None:
        os.environ[GRPC_ENV] = f"{host} {grpc.port}"  # each worker serves gRPC too
    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # the workers exit when it dies
    try:
        with (
            multiprocess_metrics_dir(),
            connection_table(workers, settings.serving),
            rate_table(workers, settings),
        ):
            uvicorn.run(WORKER_APP, factory=True, workers=workers, **common)
    finally:
        os.environ.pop(SUPERVISOR_ENV, None)
        os.environ.pop(GRPC_ENV, None)


WORKER_APP = "aiweb.cli.serve:worker_app"
"""uvicorn's app factory in each worker of ``aiweb serve --workers N``."""

SUPERVISOR_ENV = "AIWEB_SERVE_SUPERVISOR_PID"
"""The pid of ``aiweb serve --workers N`` (uvicorn's supervisor), for its workers."""

GRACEFUL_SHUTDOWN_S = 30
"""How long a stopping worker waits for its open requests, seconds."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def worker_app() -> Any:
    """The ASGI app of one worker of ``aiweb serve --workers N`` (uvicorn's factory):
    :func:`aiweb.app.app_factory`, after :func:`exit_with_parent`."""
    from aiweb.app import app_factory

    exit_with_parent()
    app = app_factory()
    host, _, port = os.environ.get(GRPC_ENV, "").partition(" ")
    if port.isdigit():
        from aiweb.cli.grpc_server import attach
        from aiweb.config import get_settings

        grpc = get_settings().grpc.model_copy(update={"port": int(port)})
        attach(app, host, grpc)
    return app


GRPC_ENV = "AIWEB_SERVE_GRPC"
"""``"<host> <port>"`` of the gRPC server each worker of ``aiweb serve --workers N`` runs."""


def _grpc_settings(settings: Settings, host: str, port: int | None) -> GrpcSettings:
    """The gRPC settings with ``--grpc-port`` applied, checked: the port free, TLS files
    given in pairs and readable.

    Raises:
        InvalidInputError: the grpc extra not installed, one TLS file without the other,
            or one that cannot be read.
        ConflictError: the port is in use.
    """
    from aiweb.errors import InvalidInputError

    grpc = settings.grpc
    if port is not None:
        grpc = grpc.model_copy(update={"port": port})
    if grpc.port is None:
        return grpc
    if grpc.port == settings.port:
        raise InvalidInputError(f"--grpc-port {grpc.port} is the HTTP port: choose another")
    if (grpc.tls_cert_file is None) != (grpc.tls_key_file is None):
        raise InvalidInputError(
            "set both AIWEB_GRPC__TLS_CERT_FILE and AIWEB_GRPC__TLS_KEY_FILE, or neither"
        )
    try:
        import aiweb.cli.grpc_server  # noqa: F401 (grpcio and its health and reflection)
    except ImportError as exc:
        raise InvalidInputError(
            f"gRPC needs the grpc extra ({exc.name} is missing): pip install 'aiweb[grpc]'"
        ) from None
    for path in (grpc.tls_cert_file, grpc.tls_key_file):
        if path is not None and not os.access(path, os.R_OK):
            raise InvalidInputError(f"cannot read the gRPC TLS file {path}")
    check_port(host, grpc.port)
    return grpc


def exit_with_parent(parent: int | None = None, *, poll_s: float = 1.0) -> None:
    """Make this worker stop when ``parent`` (the ``aiweb serve`` supervisor) dies, even
    by ``kill -9``, so that no orphan keeps serving, or holding the port.

    On Linux the kernel sends SIGTERM at the parent's death (``prctl(PR_SET_PDEATHSIG)``);
    everywhere a daemon thread also checks every ``poll_s`` seconds whether the parent
    is gone (the process was re-parented) and sends SIGTERM itself. SIGTERM is
    uvicorn's graceful stop: open requests get up to :data:`GRACEFUL_SHUTDOWN_S`
    seconds, after which the thread kills the process.

    Args:
        parent: the supervisor's pid; ``None`` reads ``$AIWEB_SERVE_SUPERVISOR_PID``,
            and does nothing when it is unset (not a worker of ``aiweb serve``).
        poll_s: seconds between two checks of the thread.
    """
    if parent is None:
        value = os.environ.get(SUPERVISOR_ENV, "")
        if not value.isdigit():
            return
        parent = int(value)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.warning("aiweb serve (pid %d) is gone: worker %d stops", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACEFUL_SHUTDOWN_S + 5)
        os.kill(os.getpid(), signal.SIGKILL)

    # also covers a parent that died before the prctl call: the first check sees it
    threading.Thread(target=watch, name="aiweb-parent-watch", daemon=True).start()


EMBEDDING_THREADS_ENV = "AIWEB_EMBEDDINGS__THREADS"


def share_embedding_threads(workers: int) -> None:
    """Give each of ``workers`` processes its share of the cores for onnxruntime.

    ``AIWEB_EMBEDDINGS__THREADS=0`` (the default) means every core, which is right for one
    process; several workers each running that many intra-op threads would oversubscribe
    the cores (measured on 2 cores and 2 workers: ~0.8 ms more CPU per query embedding).
    So when it is unset or 0 and there are several workers, the workers inherit
    ``max(1, cores // workers)``. A value the operator set is kept.
    """
    if workers > 1 and os.environ.get(EMBEDDING_THREADS_ENV, "0").strip() in ("", "0"):
        cores = max(1, len(os.sched_getaffinity(0)))
        os.environ[EMBEDDING_THREADS_ENV] = str(max(1, cores // workers))


@contextlib.contextmanager
def multiprocess_metrics_dir() -> Iterator[None]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory for the worker processes
    (which inherit it), so ``/metrics`` adds up every worker; removed afterwards. A
    directory the operator set already is used as it is."""
    from aiweb.monitoring.metrics import MULTIPROC_ENV

    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="aiweb-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def connection_table(workers: int, serving: ServingSettings) -> Iterator[str | None]:
    """The shared connection table for ``workers`` processes (see
    :mod:`aiweb.serving.balance`) in a temporary file the workers find through
    ``$AIWEB_SERVE_CONNECTION_TABLE``, removed afterwards.

    Yields:
        The table's path, or ``None`` when ``serving.balance_connections`` is off or
        there is one worker (then there is no table).
    """
    from aiweb.serving import balance

    if not serving.balance_connections or workers < 2:
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="aiweb-connections-")
    os.close(fd)
    balance.create_table(path, workers)
    os.environ[balance.TABLE_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(balance.TABLE_ENV, None)
        with contextlib.suppress(OSError):
            os.unlink(path)


def _address(host: str | None, port: int | None) -> tuple[str, int]:
    """The options when given, else ``AIWEB_HOST`` / ``AIWEB_PORT`` (127.0.0.1:8000)."""
    from aiweb.config import get_settings

    if host is None or port is None:
        settings = get_settings()
        host = settings.host if host is None else host
        port = settings.port if port is None else port
    return host, port


HOST_HELP = "Address to bind [default: AIWEB_HOST, else 127.0.0.1]."
PORT_HELP = "Port to bind [default: AIWEB_PORT, else 8000]."


@contextlib.contextmanager
def rate_table(workers: int, settings: Settings) -> Iterator[str | None]:
    """The rate-limit windows shared by ``workers`` processes (see
    :class:`aiweb.security.ratelimit.SharedWindows`) in a temporary file the workers find
    through ``$AIWEB_SERVE_RATE_TABLE``, removed afterwards; so the workers of one server
    share one budget per key without Redis.

    Yields:
        The table's path, or ``None`` when there is one worker, rate limits are off, or
        ``AIWEB_REDIS_URL`` is set (then Redis holds the budgets).
    """
    from aiweb.security import ratelimit

    if workers < 2 or not settings.rate_limit.enabled or settings.redis_url:
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="aiweb-ratelimit-")
    os.close(fd)
    ratelimit.create_shared_table(path, settings.rate_limit)
    os.environ[ratelimit.SHARED_TABLE_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(ratelimit.SHARED_TABLE_ENV, None)
        with contextlib.suppress(OSError):
            os.unlink(path)


@friendly_errors
def serve(
    host: str | None = typer.Option(None, help=HOST_HELP, show_default=False),
    port: int | None = typer.Option(None, help=PORT_HELP, show_default=False),
    workers: str = typer.Option("1", help="Worker processes, or 'auto' for one per core."),
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        help="Log every request (logger aiweb.access; JSON with AIWEB_LOG_FORMAT=json).",
    ),
    grpc_port: int | None = typer.Option(
        None,
        "--grpc-port",
        min=1,
        max=65535,
        help="Also serve the Open Inference Protocol over gRPC on this port "
        "[default: AIWEB_GRPC__PORT, else off].",
        show_default=False,
    ),
) -> None:
    """Serve the API: migrate the database, load and warm the production models, listen."""
    host, port = _address(host, port)
    count = _workers(workers)
    check_port(host, port)  # before the first start's admin key is made (and not shown)
    run_server(
        host, port, count, admin_secret=prepare(host), access_log=access_log, grpc_port=grpc_port
    )


@friendly_errors
def demo(
    host: str | None = typer.Option(None, help=HOST_HELP, show_default=False),
    port: int | None = typer.Option(None, help=PORT_HELP, show_default=False),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Serve when trained."),
) -> None:
    """Fetch SST-2 and the SMS Spam Collection, train `sentiment` and `spam`, and serve them."""
    from aiweb.cli.train import run_training

    host, port = _address(host, port)
    if serve_after:
        check_port(host, port)  # before training, not a minute later
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
    vision = _install_vision()
    # a fresh predict-only key for the example, replacing the previous demo's
    with open_keys() as service:
        if any(k.name == "demo" for k in service.list()):
            service.delete("demo", actor="demo")
        _, demo_secret = service.create("demo", ["predict"], actor="demo")
    url = f"http://{host}:{port}"
    if admin_secret:
        print_admin_key(admin_secret, url)
    err.rule("ready")
    err.print(
        f"Open {url}/ for the dashboard (log in with an admin key) and {url}/docs for the "
        "API. Try (a predict-only demo key):\n",
        highlight=False,
    )
    err.print(
        f"  curl -s -X POST {url}/v1/models/sentiment/predict "
        f"-H 'authorization: Bearer {demo_secret}' "
        "-H 'content-type: application/json' "
        """-d '{"inputs":["a gorgeous, witty, seductive movie"]}'\n""",
        highlight=False,
        soft_wrap=True,
    )
    if vision:
        err.print(
            f"  curl -s {url}/v1/models/faces/predict "
            f"-H 'authorization: Bearer {demo_secret}' "
            "-H 'content-type: image/jpeg' --data-binary @photo.jpg\n"
            f"  (or drop a photo on {url}/vision)\n",
            highlight=False,
            soft_wrap=True,
        )
    if serve_after:
        run_server(host, port, 1)


def _install_vision() -> bool:
    """Register the built-in vision models for the demo when ``aiweb[vision]`` is
    installed (already registered ones are kept); whether they are there."""
    from aiweb.vision.builtin import install

    err.rule("faces, people, ocr ← OpenCV, rapidocr")
    try:
        with open_registry() as registry:
            done = install(registry, ["faces", "people", "ocr"], actor="demo")
    except (ImportError, FileNotFoundError) as exc:
        err.print(f"vision models skipped ({exc}): pip install 'aiweb\\[vision]'")
        return False
    for d in done:
        state = "already installed" if d.already_installed else "registered"
        err.print(f"{d.version.name}: version {d.version.version} {state}", highlight=False)
    return True
