"""Run one long, uninterruptible call in a child process that a cancelled job can end.

Most fits stop cooperatively: they report progress between iterations and the job's
:meth:`~aiweb.jobs.context.JobContext.progress` raises there once a cancel is requested.
A single call into compiled code (a LAPACK inverse, a solver's whole fit) cannot be
stopped that way: a cancel would reach it only when it returns, minutes later.
:func:`run_in_child` runs such a call in a child process instead and, while it waits,
calls the job's cancellation check every :data:`POLL_S`; when the check raises, the
child is terminated (then killed) and the check's exception propagates: the job ends
``cancelled`` as if the fit had stopped itself.

- The child is a fresh interpreter (``subprocess``: fork and exec at once, what
  ``multiprocessing``'s ``spawn`` method does too): a process with threads (the server, a
  worker) is never forked. It is started directly rather than by ``multiprocessing``,
  which refuses children to a daemonic process (a Celery prefork worker) and would import
  the parent's ``__main__`` first. Starting one costs 0.15-0.4 s plus the imports of the
  call (scikit-learn: ~1 s), so callers use it only for calls that take longer (each sets
  its own size threshold).
- The function and its arguments are pickled; numpy arrays of :data:`INLINE_BYTES` or more
  (also those inside scipy sparse matrices or fitted estimators) travel as raw bytes over
  the pipe (pickle protocol 5 out-of-band buffers), written from the array and read into
  the new one with no intermediate copy. The result comes back the same way.
- The child uses as many BLAS threads as the parent's BLAS allows now (``aiweb serve``
  keeps it to ``serving.blas_threads``), so a fit takes the cores it would take in process
  and returns the same numbers.
- An exception raised in the child is raised again in the parent with its type and
  message (:class:`~aiweb.errors.InvalidInputError` stays a bad-input failure); the child's
  traceback is added as a note. A child that ends without an answer (killed by the
  out-of-memory killer, a signal) raises :class:`ChildDied`.
- No child outlives the call: it is ended (SIGTERM, then SIGKILL after
  :data:`TERMINATE_GRACE_S`) and reaped when the call raises for any reason, and it exits
  by itself when its parent process is gone (a thread in it watches).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing.connection
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")

#: seconds between two calls of the cancellation check while the child works
POLL_S = 0.25
#: seconds a terminated (SIGTERM) child gets to exit before it is killed (SIGKILL)
TERMINATE_GRACE_S = 2.0
#: buffers (numpy arrays' memory) at least this large travel beside the pickle, not in it
INLINE_BYTES = 1 << 16
#: seconds between the child's looks at whether its parent is still alive
PARENT_WATCH_S = 0.5

_LIVE: set[int] = set()
_LIVE_LOCK = threading.Lock()


class ChildDied(RuntimeError):
    """The child process ended without an answer: killed by a signal (the kernel's
    out-of-memory killer sends SIGKILL) or exited before replying."""


def live_children() -> frozenset[int]:
    """Process ids of the children :func:`run_in_child` runs now in this process."""
    with _LIVE_LOCK:
        return frozenset(_LIVE)


def blas_threads() -> int | None:
    """Threads the BLAS libraries loaded in this process may use now (the smallest
    limit among them), or ``None`` when none is loaded."""
    from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

    found = [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]
    return min(found) if found else None


def run_in_child(
    fn: Callable[..., T],
    *args: Any,
    check: Callable[[], None] | None = None,
    what: str | None = None,
    poll_s: float = POLL_S,
    threads: int | None = None,
) -> T:
    """``fn(*args)`` computed in a freshly started child interpreter, stoppable by ``check``.

    ``fn`` and ``args`` are pickled before the child starts (an unpicklable one raises
    here, at once); the arrays among them are not copied until they are sent.

    Args:
        fn: a picklable callable: a module-level function, or a bound method of a
            picklable object (``estimator.fit``).
        *args: its picklable arguments.
        check: called every ``poll_s`` seconds while the child works (and once before it
            starts); whatever it raises (a job's :class:`~aiweb.jobs.entities.
            JobCancelled`, ``LeaseLost``, ``JobInterrupted``) ends the child and
            propagates.
        what: what the call does, for :class:`ChildDied` messages (default: ``fn``'s name).
        poll_s: seconds between checks.
        threads: BLAS threads of the child (default: :func:`blas_threads` of this process;
            ``None`` there leaves the library defaults).

    Returns:
        What ``fn`` returned, unpickled in this process.

    Raises:
        ChildDied: the child ended without an answer (killed, out of memory).
        Exception: what ``fn`` raised in the child, same type and message (a
            :class:`RuntimeError` naming the type when it cannot be rebuilt here), or
            what ``check`` raised.
    """
    label = what or getattr(fn, "__qualname__", None) or repr(fn)
    if check is not None:
        check()
    if threads is None:
        threads = blas_threads()
    packed = _pack((fn, args))  # here: what cannot be pickled fails in the caller
    env = dict(os.environ)
    if threads is not None:  # read when BLAS loads in the child, before any limit applies
        env.update(dict.fromkeys(_THREAD_VARIABLES, str(threads)))
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    inbox = Connection(from_child_r, writable=False)
    outbox = Connection(to_child_w, readable=False)
    process: subprocess.Popen[bytes] | None = None
    sender: threading.Thread | None = None
    try:
        # a new interpreter (fork + exec at once): a process with threads is never forked
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _BOOT,
                json.dumps(sys.path),
                str(to_child_r),
                str(from_child_w),
                str(os.getpid()),
                "" if threads is None else str(threads),
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            env=env,
            # its own session: a signal to this process's group (Ctrl+C in a terminal,
            # `kill -TERM -PGID`, systemd's stop) reaches only this process, which
            # shuts down in order — the job goes back to `pending` (``check`` raises
            # JobInterrupted) and ends the child — instead of the child dying first and
            # the job failing with ChildDied; a parent killed outright is still noticed
            # by the child's watch thread
            start_new_session=True,
        )
        with _LIVE_LOCK:
            _LIVE.add(process.pid)
        # the child holds its own ends now: with ours closed, its death is an EOF here
        os.close(to_child_r)
        os.close(from_child_w)
        to_child_r = from_child_w = -1
        sender = threading.Thread(
            target=_write_quietly, args=(outbox, packed), name="aiweb-child-send", daemon=True
        )
        sender.start()
        message = _wait(process, inbox, check, poll_s, label)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(TERMINATE_GRACE_S)  # it exits once it has answered
    finally:
        # the child first: a sender still writing to it then fails (broken pipe) and
        # ends, and only then is its pipe closed (never a descriptor in use)
        if process is not None:
            _end(process)
        if sender is not None:
            sender.join()
        inbox.close()
        outbox.close()
        for fd in (to_child_r, from_child_w):
            if fd >= 0:
                os.close(fd)
    result: T = _answer(message, label)
    return result


def _wait(
    process: subprocess.Popen[bytes],
    inbox: Connection,
    check: Callable[[], None] | None,
    poll_s: float,
    label: str,
) -> Any:
    """The child's answer, checking ``check`` while there is none."""
    while True:
        if multiprocessing.connection.wait([inbox], timeout=poll_s):
            try:
                return _recv(inbox)
            except (EOFError, OSError):
                break  # the child ended mid-answer or without one
        elif check is not None:
            check()
    try:
        exitcode = process.wait(TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:  # it closed its pipe but lives on: end it
        _end(process)
        exitcode = process.returncode
    raise ChildDied(_death(label, exitcode))


def _death(label: str, exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = f"was killed by {name}"
        if exitcode == -signal.SIGKILL:
            why += " (most often the out-of-memory killer: the fit needs less memory)"
    else:
        why = f"exited with status {exitcode}"
    return f"{label}: the child process running it {why} before answering"


def _end(process: subprocess.Popen[bytes]) -> None:
    """Make sure ``process`` is gone (terminate, then kill) and reaped."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(TERMINATE_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(process.pid)


def _answer(message: Any, label: str) -> Any:
    kind = message[0]
    if kind == "ok":
        return message[1]
    _kind, exc, name, text, tb = message
    if not isinstance(exc, Exception):  # not rebuilt, or SystemExit & co: not ours to raise
        exc = RuntimeError(f"{name}: {text}")
    exc.add_note(f"raised in the child process running {label}:\n{tb}")
    raise exc


# --------------------------------------------------------------------------- the wire


_Packed = tuple[bytes, list[pickle.PickleBuffer]]


def _pack(obj: Any) -> _Packed:
    """``obj`` pickled (protocol 5), its large buffers kept aside (not copied).

    Raises:
        pickle.PicklingError, TypeError, AttributeError: ``obj`` cannot be pickled.
    """
    buffers: list[pickle.PickleBuffer] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        with buffer.raw() as raw:
            if raw.nbytes < INLINE_BYTES:
                return True  # in the pickle
        buffers.append(buffer)
        return False

    return pickle.dumps(obj, protocol=5, buffer_callback=out_of_band), buffers


def _write(conn: Connection, packed: _Packed) -> None:
    """Send what :func:`_pack` made: the pickle and the buffer sizes, then each buffer's
    raw bytes, written from the array's own memory."""
    data, buffers = packed
    sizes = []
    for buffer in buffers:
        with buffer.raw() as raw:
            sizes.append(raw.nbytes)
    conn.send((data, sizes))
    fd = conn.fileno()
    for buffer in buffers:
        with buffer.raw() as raw:
            view = raw.cast("B")
            while view:
                written = os.write(fd, view[: 1 << 24])
                view = view[written:]


def _send(conn: Connection, obj: Any) -> None:
    _write(conn, _pack(obj))


def _recv(conn: Connection) -> Any:
    """What :func:`_send` sent: each large buffer read straight into its own memory."""
    data, sizes = conn.recv()
    fd = conn.fileno()
    buffers = []
    for size in sizes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        while view:
            read = os.readv(fd, [view[: 1 << 24]])
            if read == 0:
                raise EOFError("the other end closed mid-message")
            view = view[read:]
        buffers.append(buffer)
    # bytes of this process or of its own child, over a private pipe: never a user's
    return pickle.loads(data, buffers=buffers)  # noqa: S301


def _write_quietly(conn: Connection, packed: _Packed) -> None:
    """:func:`_write` from the parent's sender thread: a child that is gone (ended on
    cancel, died) leaves a broken pipe, which the waiting side reports."""
    with contextlib.suppress(OSError, EOFError):  # BrokenPipeError is an OSError
        _write(conn, packed)


# --------------------------------------------------------------------------- the child


#: what the child interpreter runs: ``sys.argv`` is ``[-c, sys.path as JSON, inbox fd,
#: outbox fd, parent pid, BLAS threads or ""]``
_BOOT = (
    "import json, sys\n"
    "sys.path[:] = json.loads(sys.argv[1])\n"
    "from aiweb.jobs.child import _child_main\n"
    "_child_main(*sys.argv[2:])\n"
)
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _child_main(inbox_fd: str, outbox_fd: str, parent: str, threads: str) -> None:
    """The child: limit BLAS threads, receive ``(fn, args)``, answer ``("ok", result)`` or
    ``("error", exception or None, type name, message, traceback)``."""
    watch = threading.Thread(
        target=_watch_parent, args=(int(parent),), name="parent-watch", daemon=True
    )
    watch.start()
    inbox = Connection(int(inbox_fd), writable=False)
    outbox = Connection(int(outbox_fd), readable=False)
    try:
        fn, args = _recv(inbox)
    except (EOFError, OSError):
        return  # the parent gave up before sending (cancelled): nobody to answer
    answer: tuple[Any, ...]
    limits = None
    try:
        if threads:
            # the environment set the pools BLAS started with; this limits any library
            # loaded already by other means
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(int(threads), "blas")
        answer = ("ok", fn(*args))
    except BaseException as exc:  # everything goes back to the parent
        answer = _error(exc)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    try:
        try:
            _send(outbox, answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # result not picklable
            _send(outbox, _error(exc))
    except OSError:
        pass  # the parent stopped listening (cancelled)
    outbox.close()


def _error(exc: BaseException) -> tuple[str, BaseException | None, str, str, str]:
    """``exc`` as the parent can rebuild it: the exception itself when it survives a
    pickle round trip, else only its type name and message."""
    tb = "".join(traceback.format_exception(exc))
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    portable: BaseException | None = exc
    try:
        exc.__traceback__ = None
        pickle.loads(pickle.dumps(exc, protocol=5))  # noqa: S301 - our own bytes
    except Exception:
        portable = None
    return ("error", portable, name, str(exc), tb)


def _watch_parent(parent: int) -> None:
    """Exit at once when the parent process is gone (it was killed: nothing ends us)."""
    while True:
        time.sleep(PARENT_WATCH_S)
        if os.getppid() != parent:
            sys.stderr.write("aiweb child: the parent process is gone, exiting\n")
            os._exit(1)
