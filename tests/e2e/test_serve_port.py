"""``aiweb serve`` and ``aiweb demo`` on a port another process holds: one clear error,
exit 1, before any banner, any admin key or any training."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import CLI, base_env

pytestmark = pytest.mark.e2e


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket of this test holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_port_in_use_fails_before_the_banner(command: str, taken_port: int, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [str(CLI), command, "--port", str(taken_port)],
        env=base_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"port {taken_port} on 127.0.0.1 is in use" in output
    assert "--port" in output  # says how to choose another
    assert "serving on" not in output
    assert "Traceback" not in output
    # nothing was set up: no database, so no first-start admin key made and never shown
    assert not (home / "aiweb.db").exists()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_aiweb_host_and_port_are_honoured(command: str, tmp_path: Path) -> None:
    """``AIWEB_HOST``/``AIWEB_PORT`` choose the address when no option is given (seen on
    a port in use: the refusal names the address tried)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = base_env(tmp_path / "home", AIWEB_HOST="127.0.0.2", AIWEB_PORT=str(port))
        done = subprocess.run(
            [str(CLI), command], env=env, capture_output=True, text=True, timeout=120
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"port {port} on 127.0.0.2 is in use" in output


def test_the_port_option_wins_over_aiweb_port(taken_port: int, tmp_path: Path) -> None:
    env = base_env(tmp_path / "home", AIWEB_PORT="1")  # would be refused (privileged)
    done = subprocess.run(
        [str(CLI), "serve", "--port", str(taken_port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"port {taken_port} on 127.0.0.1 is in use" in output
