"""Fixtures of the deploy tests: the image, built once per session (tests/deploy/dockerkit.py).

These tests need a running Docker daemon (`.ci/run` starts `dockerd`); they fail, not skip,
without one, since `make test-deploy` exists to run them.
"""

from __future__ import annotations

import pytest
from dockerkit import build_image, docker_ready, image_size


@pytest.fixture(scope="session")
def image() -> str:
    """Tag of aiweb's image, built offline from the debootstrapped base."""
    reason = docker_ready()
    if reason:
        pytest.fail(f"the deploy tests need Docker: {reason}")
    tag, seconds = build_image()
    print(f"\nimage {tag}: {image_size(tag) / 1e6:.0f} MB, built in {seconds:.0f} s")
    return tag
