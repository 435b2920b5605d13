"""Long fits in a child process a cancel ends (issue 18, finding 8): the generic helper
:func:`aiweb.jobs.child.run_in_child` with real spawned processes, and the two fits that
use it (EASE's inverse, the classifier's lbfgs fit) giving the same numbers in both paths.
The cancelled jobs themselves are in ``tests/integration/test_child_cancel.py``."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from child_helpers import child_blas_threads
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from aiweb.classification import trainer
from aiweb.errors import InvalidInputError
from aiweb.jobs.child import ChildDied, blas_threads, live_children, run_in_child
from aiweb.jobs.entities import JobCancelled
from aiweb.recommendations.algorithms import base
from aiweb.recommendations.algorithms import ease as ease_module
from aiweb.recommendations.algorithms.ease import EASE, ease_weights
from aiweb.recommendations.data import Interactions


def gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


# ---- the helper ------------------------------------------------------------------------------


def test_the_result_comes_back_whole_large_arrays_included() -> None:
    big = np.random.default_rng(0).random((1000, 1500))  # 12 MB: beside the pickle
    assert np.array_equal(run_in_child(np.negative, big), -big)
    matrix = sparse.random(2000, 3000, density=0.01, format="csr", random_state=0)
    back = run_in_child(copy.deepcopy, {"m": matrix, "f": np.asfortranarray(big), "s": "x"})
    assert (back["m"] != matrix).nnz == 0
    assert back["f"].flags.f_contiguous
    assert np.array_equal(back["f"], big)
    assert back["s"] == "x"
    assert run_in_child(os.getpid) != os.getpid()
    assert not live_children()


def test_an_exception_in_the_child_keeps_its_type_and_message() -> None:
    with pytest.raises(ValueError, match=r"^invalid literal for int\(\) with base 10: 'x'") as e:
        run_in_child(int, "x")
    assert any("raised in the child process" in note for note in e.value.__notes__)
    with pytest.raises(InvalidInputError) as bad:
        run_in_child(base.check_ranges, "ease", EASE.RANGES, {"l2": float("nan")})
    assert bad.value.detail == "ease.l2 must be a finite number in (0, 1000000000], not nan"
    assert bad.value.status == 422
    # refused at once, no child started
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError), match="pickle"):
        run_in_child(lambda: 1)


def test_a_child_killed_by_a_signal_is_a_clear_error() -> None:
    with pytest.raises(ChildDied, match=r"killed by SIGKILL \(most often the out-of-memory"):
        run_in_child(signal.raise_signal, signal.SIGKILL, what="a doomed fit")
    with pytest.raises(ChildDied, match=r"^a doomed fit: the child process running it was killed"):
        run_in_child(os.abort, what="a doomed fit")
    assert not live_children()


def test_the_check_ends_the_child_and_its_exception_propagates() -> None:
    seen: list[int] = []
    started = time.monotonic()

    def check() -> None:
        seen.extend(live_children())
        if time.monotonic() - started > 1.0:
            raise JobCancelled("job x was cancelled")

    with pytest.raises(JobCancelled, match="job x was cancelled"):
        run_in_child(time.sleep, 60, check=check, poll_s=0.1)
    took = time.monotonic() - started
    assert took < 4, f"{took:.1f} s to stop a child"
    assert seen, "the child never ran"
    assert not live_children()
    assert all(gone(pid) for pid in set(seen))


def test_the_child_uses_the_parents_blas_threads() -> None:
    with threadpool_limits(1, "blas"):
        assert blas_threads() == 1
        assert run_in_child(child_blas_threads, np.zeros(1)) == 1
        assert run_in_child(os.getenv, "OPENBLAS_NUM_THREADS") == "1"
    assert run_in_child(child_blas_threads, np.zeros(1), threads=2) == 2


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import threading, time, sys\n"
        "from aiweb.jobs.child import live_children, run_in_child\n"
        "def tell():\n"
        "    while not live_children(): time.sleep(0.05)\n"
        "    print(*live_children(), flush=True)\n"
        "if __name__ == '__main__':\n"
        "    threading.Thread(target=tell, daemon=True).start()\n"
        "    run_in_child(time.sleep, 120)\n"
    )
    path = tmp_path / "parent.py"
    path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not gone(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while not gone(pid):
            assert time.monotonic() < deadline, "the orphaned child is still running"
            time.sleep(0.1)
    finally:
        parent.kill()
        parent.wait()


def test_a_signal_to_the_parents_group_leaves_the_child_to_the_parent(tmp_path: Path) -> None:
    """Ctrl+C or ``kill -TERM -PGID`` at shutdown: the parent's handler stops the job in
    order (``check`` raises, the job goes back to pending) — the child is not killed
    first, which made the job fail with ChildDied and a traceback in the server log."""
    script = (
        "import signal, threading, time\n"
        "from aiweb.jobs.child import ChildDied, live_children, run_in_child\n"
        "stop = threading.Event()\n"
        "class Interrupted(Exception): pass\n"
        "def check():\n"
        "    if stop.is_set(): raise Interrupted\n"
        "def tell():\n"
        "    while not live_children(): time.sleep(0.05)\n"
        "    print(*live_children(), flush=True)\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGTERM, lambda *_: stop.set())\n"
        "    threading.Thread(target=tell, daemon=True).start()\n"
        "    try:\n"
        "        run_in_child(time.sleep, 120, check=check, poll_s=0.1)\n"
        "    except Interrupted:\n"
        "        print('interrupted', *live_children(), flush=True)\n"
        "    except ChildDied as exc:\n"
        "        print('died', exc, flush=True)\n"
    )
    path = tmp_path / "parent.py"
    path.write_text(script)
    parent = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        os.killpg(parent.pid, signal.SIGTERM)  # the whole group, as a terminal's Ctrl+C
        assert parent.stdout.readline().strip() == "interrupted"  # no child left: no pid
        assert parent.wait(30) == 0
        assert gone(pid)
    finally:
        parent.kill()
        parent.wait()


# ---- EASE ------------------------------------------------------------------------------------


def interactions(n_users: int = 300, n_items: int = 400) -> Interactions:
    rng = np.random.default_rng(1)
    users, items = [], []
    for u in range(n_users):
        for i in rng.choice(n_items, 15, replace=False).tolist():
            users.append(f"u{u}")
            items.append(f"i{i}")
    return Interactions.build(users, items, np.arange(len(users), dtype=np.float64))


def test_ease_gives_the_same_b_in_a_child_and_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    data = interactions()
    here = EASE(l2=50.0).fit(data, [])
    monkeypatch.setattr(ease_module, "CHILD_MIN_ITEMS", 1)  # every fit in a child
    spawned = 0

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal spawned
        spawned += 1
        return run_in_child(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ease_module, "run_in_child", counting)
    there = EASE(l2=50.0).fit(data, [])
    assert spawned == 1
    assert here.weights_ is not None
    assert there.weights_ is not None
    assert there.weights_.dtype == np.float32
    assert there.weights_.shape == here.weights_.shape
    np.testing.assert_allclose(there.weights_, here.weights_, rtol=1e-6, atol=1e-9)
    assert np.array_equal(there.items_, here.items_)  # type: ignore[arg-type]


def test_ease_errors_are_the_same_from_the_child() -> None:
    x = sparse.csr_matrix(np.array([[1.0, np.nan], [1.0, 1.0]], dtype=np.float32))
    with pytest.raises(InvalidInputError) as here:
        ease_weights(x, 1.0)
    with pytest.raises(InvalidInputError) as there:
        run_in_child(ease_weights, x, 1.0)
    assert there.value.detail == here.value.detail
    assert "not finite numbers" in here.value.detail


def test_an_ease_fit_in_a_child_reports_to_the_fit_progress_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check of a fit in a child is the fit's progress callback (a job's progress):
    what it raises ends the fit."""
    monkeypatch.setattr(ease_module, "CHILD_MIN_ITEMS", 1)
    monkeypatch.setattr(base, "FIT_PROGRESS_INTERVAL_S", 0.0)
    calls: list[float] = []

    def progress(fraction: float) -> None:
        calls.append(fraction)
        if len(calls) >= 2:
            raise JobCancelled("job y was cancelled")

    rng = np.random.default_rng(2)
    n_users, n_items = 2000, 2500  # a second or more in the child
    users = [f"u{u}" for u in range(n_users) for _ in range(12)]
    items = [f"i{i}" for i in rng.integers(0, n_items, len(users)).tolist()]
    data = Interactions.build(users, items, np.zeros(len(users)))
    with base.fit_progress(progress), pytest.raises(JobCancelled):
        EASE(min_item_users=1).fit(data, [])
    assert not live_children()


# ---- the classifier's lbfgs fit --------------------------------------------------------------


def texts_and_labels(n: int = 300) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(200)]
    labels = ["red", "green", "blue"]
    texts, ys = [], []
    for _ in range(n):
        y = int(rng.integers(0, 3))
        cue = [f"cue{y}"] * int(rng.integers(1, 3))
        texts.append(" ".join(cue + rng.choice(words, 8).tolist()))
        ys.append(labels[y])
    return texts, ys


def test_the_classifier_gives_the_same_model_in_a_child_and_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts, labels = texts_and_labels()
    params = trainer.TrainParams(n_features_log2=12)
    here = trainer.fit_text_classifier(texts, labels, params)
    monkeypatch.setattr(trainer, "LBFGS_CHILD_MIN_WORK", 0)  # every fit in a child
    reports: list[str] = []
    there = trainer.fit_text_classifier(
        texts, labels, params, progress=lambda stage, _f: reports.append(stage)
    )
    clf_here, clf_there = here.pipeline.named_steps["clf"], there.pipeline.named_steps["clf"]
    np.testing.assert_allclose(clf_there.coef_, clf_here.coef_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(clf_there.intercept_, clf_here.intercept_, rtol=1e-7, atol=1e-10)
    assert list(clf_there.classes_) == list(clf_here.classes_)
    probe = ["cue0 w1 w2", "cue2 w3"]
    np.testing.assert_allclose(there.predict_proba(probe), here.predict_proba(probe), atol=1e-9)
    assert reports[-1] == "fitted"


def test_the_fit_path_follows_the_work_threshold() -> None:
    x = sparse.csr_matrix(np.eye(4))
    assert trainer.lbfgs_work(2, x) == 4 + 4
    assert trainer.lbfgs_work(5, x) == 5 * (4 + 4)
    # SST-2 hashed, 30,000 rows: in a child; 1,000 rows: here
    assert 1 * (2**20 + 4_700_000) >= trainer.LBFGS_CHILD_MIN_WORK > 1 * (2**20 + 160_000)


def test_classifier_errors_are_the_same_from_the_child() -> None:
    x = sparse.csr_matrix(np.eye(4))
    one_class = ["a", "a", "a", "a"]
    with pytest.raises(ValueError, match="class") as here:
        trainer.fit_logistic_regression(LogisticRegression(), x, one_class, child=False)
    with pytest.raises(ValueError, match="class") as there:
        trainer.fit_logistic_regression(LogisticRegression(), x, one_class, child=True)
    assert type(there.value) is type(here.value)
    assert str(there.value) == str(here.value)
