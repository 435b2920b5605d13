"""The HTTP half of :mod:`bench.vision` (issue #25): images/s and latency per image through
``POST /v1/models/{faces|ocr}/predict`` at concurrency 1 and 4, against the same work done
by the library in this process, and the server's RSS with the three models loaded.

    python -m bench.vision --http [--http-sentences 40] [--face-requests 96] [--rounds 4]
        [--check] [--keep]

Set-up, in a fresh temporary work directory and ``AIWEB_HOME`` (SQLite): ``aiweb serve
--workers 1`` (the predict rate limit lifted, as :mod:`bench.serving` runs it; its log in
the work directory) is started on a free port with no model and its RSS read; then
``aiweb models install faces people ocr`` and ``aiweb keys create`` (scope ``predict``);
one request to each of the three models loads it, ``/readyz`` must list all three, and
the RSS is read again (``VmRSS`` summed over the server's process tree; ``VmHWM`` its
peak so far), and once more after the runs.

The work (the same bytes for both sides):

* ``faces``: the twelve photographs of ``AIWEB_DATA_HOME/images`` as their files (JPEG or
  PNG), cycled: ``--face-requests`` images per row (96: eight passes);
* ``ocr``: the first ``--http-sentences`` (40) of the rendered SST-2 sentences of the OCR
  part (the same seed, so the same images as its first 40), each once per row, as PNG
  (lossless: both sides read the very pixels the CER was measured on).

A row hands its images out one at a time from a shared counter to ``c`` worker threads
started together; its wall time gives images/s, each image's time its latency (p50,
p99). The rows run in ``--rounds`` rounds of a share of the images each (every other
round in reverse order), so that a change of load on the machine reaches every row
alike; over the rounds each row answers the same images. The paths:

* ``HTTP``: each thread its own ``httpx.Client`` (keep-alive), the image file as the body
  with its media type; the time is from sending to the parsed JSON answer;
* ``direct``: decode (Pillow: open, EXIF orientation, RGB, as the server decodes) and
  ``FaceDetector.from_package().detect`` / ``OcrReader().read`` in this process. The
  server runs one model call at a time per version (``LoadedVision.limiter``) while it
  decodes other images in worker threads, so at c=4 the like-for-like baseline is ONE
  instance behind a lock, the decode outside it (``direct, 1 instance + lock``; at c=1
  the same). ``direct, 1 instance per thread`` (4 instances, no lock) shows what that
  one call at a time costs.

``overhead`` = direct images/s / HTTP images/s - 1 (the extra time per image), HTTP
against the locked single instance at the same concurrency. Bar (issue #25): overhead at
c=4 <= 15% for each model. ``CPU ms/image`` is the CPU the work took per image: the
server's process tree for HTTP, this process for direct (both include the decode);
``client CPU`` this process's for HTTP (the clients); ``others' cores`` what every other
process on the machine used over the row (``/proc/stat``), to tell a disturbed row.
Last, the route's fixed cost: a blank 64 x 64 PNG sent to ``faces`` 200 times at c=1,
HTTP against direct.

Checks: every HTTP answer equals the direct one (faces: the same boxes; OCR: the same
``text`` as ``OcrReader.read``, and the same words as ``rapidocr`` called directly, as the
OCR part checks), no request failed.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import table

#: the models ``aiweb models install`` registers (all three are loaded for the RSS)
MODELS = ("faces", "people", "ocr")
CONCURRENCIES = (1, 4)
#: issue #25's bar: HTTP's extra time per image at c=4 against the library in process
OVERHEAD_MAX = 0.15
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
MB = 1_000_000
REQUEST_TIMEOUT_S = 300.0
#: the fixed cost of a request: a blank image this many pixels square, sent this many times
BLANK = 64
BLANK_REQUESTS = 200
LOCKED = "direct, 1 instance + lock"
UNLOCKED = "direct, 1 instance per thread"

#: ``call(index) -> answer``: one worker thread's way of answering image ``index``
Call = Callable[[int], Any]


@dataclass(frozen=True)
class Picture:
    """One image as sent: its name, its file's bytes and their media type."""

    name: str
    data: bytes
    media_type: str


@dataclass
class Work:
    """A model's images and how many go out per row (cycling through them)."""

    model: str
    pictures: list[Picture]
    per_run: int


@dataclass
class Sample:
    """A path's images at one concurrency (its rounds added up)."""

    path: str
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    answers: dict[int, Any]  # index into the pictures -> the answer (the last one)
    errors: list[str]
    bench_cpu_s: float  # this process (direct: the work; HTTP: the clients)
    server_cpu_s: float  # the server's process tree
    busy_cpu_s: float  # the whole machine's (/proc/stat)

    @property
    def cpu_ms(self) -> float:
        """CPU per image of the side doing the work (the server's for HTTP)."""
        work = self.server_cpu_s if self.path == "HTTP" else self.bench_cpu_s
        return 1000 * work / self.images

    @property
    def others(self) -> float:
        """Cores other processes kept busy over the run, on average."""
        return max(0.0, self.busy_cpu_s - self.bench_cpu_s - self.server_cpu_s) / self.seconds

    @property
    def images(self) -> int:
        return len(self.latencies_ms)

    def add(self, other: Sample) -> None:
        """Fold another round of the same path and concurrency into this one."""
        self.seconds += other.seconds
        self.latencies_ms += other.latencies_ms
        self.answers.update(other.answers)
        self.errors += other.errors
        self.bench_cpu_s += other.bench_cpu_s
        self.server_cpu_s += other.server_cpu_s
        self.busy_cpu_s += other.busy_cpu_s

    @property
    def rate(self) -> float:
        return self.images / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p99(self) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[98]


@dataclass
class Results:
    """Everything :func:`report` prints."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)  # model -> runs
    fixed: list[Sample] = field(default_factory=list)  # the blank image's runs
    checks: list[str] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)
    passed: bool = True


# --------------------------------------------------------------------------- the images


def face_work(images: Path, names: Sequence[str], per_run: int) -> Work:
    pictures = [
        Picture(name, (images / name).read_bytes(), MEDIA_TYPES[Path(name).suffix.lower()])
        for name in names
    ]
    return Work("faces", pictures, per_run)


def png(pixels: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def ocr_work(rendered: Sequence[Any]) -> Work:
    """``rendered``: pixels of the sentence images (uint8 RGB), sent once each per row."""
    pictures = [Picture(f"sentence {k}", png(p), "image/png") for k, p in enumerate(rendered)]
    return Work("ocr", pictures, len(pictures))


def decode(data: bytes) -> Any:
    """The file's pixels as the server decodes them: oriented, 8-bit RGB."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray((ImageOps.exif_transpose(image) or image).convert("RGB"))


# --------------------------------------------------------------------------- one run


def busy_cpu_s() -> float:
    """CPU seconds all processes have spent since boot (``/proc/stat``; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def drive(
    path: str,
    work: Work,
    concurrency: int,
    make_call: Callable[[int], Call],
    server_cpu: Callable[[], float],
    numbers: range,
) -> Sample:
    """Images ``numbers`` (cycling through the pictures) handed out from a shared counter
    to ``concurrency`` threads, thread ``k`` calling ``make_call(k)`` (built before the
    clock starts)."""
    calls = [make_call(k) for k in range(concurrency)]
    counter = iter(numbers)
    take = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    latencies: list[float] = []
    answers: dict[int, Any] = {}
    errors: list[str] = []

    def worker(call: Call) -> None:
        start.wait()
        while True:
            with take:
                n = next(counter, None)
            if n is None:
                return
            index = n % len(work.pictures)
            t0 = time.perf_counter()
            try:
                answer = call(index)
            except Exception as exc:  # counted and shown, the run goes on
                with take:
                    errors.append(f"{work.pictures[index].name}: {exc}")
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            with take:
                latencies.append(elapsed)
                answers[index] = answer

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    bench0, server0, busy0 = time.process_time(), server_cpu(), busy_cpu_s()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    bench1, server1, busy1 = time.process_time(), server_cpu(), busy_cpu_s()
    for call in calls:
        close = getattr(call, "close", None)
        if close is not None:
            close()
    if not latencies:
        raise RuntimeError(f"{path}: every {work.model} image failed: {errors[:3]}")
    return Sample(
        path,
        concurrency,
        seconds,
        latencies,
        answers,
        errors,
        bench1 - bench0,
        server1 - server0,
        busy1 - busy0,
    )


class HttpCall:
    """One worker's keep-alive client: ``POST /v1/models/{model}/predict``, the raw file."""

    def __init__(self, url: str, key: str, work: Work) -> None:
        import httpx

        self.work = work
        self.client = httpx.Client(
            base_url=url,
            headers={"authorization": f"Bearer {key}"},
            timeout=REQUEST_TIMEOUT_S,
        )

    def __call__(self, index: int) -> Any:
        picture = self.work.pictures[index]
        resp = self.client.post(
            f"/v1/models/{self.work.model}/predict",
            content=picture.data,
            headers={"content-type": picture.media_type},
        )
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        return answer_of(resp.json())

    def close(self) -> None:
        self.client.close()


def answer_of(body: Mapping[str, Any]) -> Any:
    """What is compared between the two sides: the boxes, or the text."""
    if "text" in body:
        return body["text"]
    return sorted(
        tuple(d["box"][k] for k in ("x", "y", "width", "height")) for d in body["detections"]
    )


def runtime(model: str) -> Callable[[Any], Any]:
    """A new instance of the library's model: ``pixels -> answer`` (as :func:`answer_of`)."""
    if model == "faces":
        from aiweb.vision.detectors import FaceDetector

        detector = FaceDetector.from_package()
        return lambda pixels: sorted(
            (d.box.x, d.box.y, d.box.width, d.box.height) for d in detector.detect(pixels)
        )
    from aiweb.vision.ocr import OcrReader

    reader = OcrReader()
    return lambda pixels: reader.read(pixels).text


def direct_call(work: Work, model: Callable[[Any], Any], lock: threading.Lock | None) -> Call:
    """Decode, then the model (behind ``lock`` when given: the server's one call at a time)."""

    def call(index: int) -> Any:
        pixels = decode(work.pictures[index].data)
        if lock is None:
            return model(pixels)
        with lock:
            return model(pixels)

    return call


# --------------------------------------------------------------------------- the runs


def measure(
    work: Work,
    url: str,
    key: str,
    server_cpu: Callable[[], float],
    rounds: int,
    concurrencies: Sequence[int] = CONCURRENCIES,
) -> list[Sample]:
    """The runs of one model: direct c=1, HTTP c=1, direct c=4 (lock), HTTP c=4, direct
    c=4 (no lock), in ``rounds`` rounds of ``work.per_run / rounds`` images each (every
    other round in reverse order), so that a change of load on the machine reaches every
    row alike; over the rounds each row answers the same ``work.per_run`` images."""
    shared = runtime(work.model)
    lock = threading.Lock()
    warm = HttpCall(url, key, work)
    for index in range(min(2, len(work.pictures))):  # first calls: allocations, caches
        shared(decode(work.pictures[index].data))
        warm(index)
    warm.close()
    own = [runtime(work.model) for _ in range(max(concurrencies))]
    for model in own:
        model(decode(work.pictures[0].data))
    makers: dict[str, Callable[[int], Call]] = {
        LOCKED: lambda _: direct_call(work, shared, lock),
        "HTTP": lambda _: HttpCall(url, key, work),
        UNLOCKED: lambda k: direct_call(work, own[k], None),
    }
    rows = [(path, c) for c in concurrencies for path in makers if path != UNLOCKED or c > 1]
    samples: dict[tuple[str, int], Sample] = {}
    for r in range(rounds):
        numbers = range(r * work.per_run // rounds, (r + 1) * work.per_run // rounds)
        for path, c in rows if r % 2 == 0 else rows[::-1]:
            sample = drive(path, work, c, makers[path], server_cpu, numbers)
            print(
                f"  {work.model} round {r + 1}/{rounds}, {path}, c={c}: {sample.images} images, "
                f"{sample.rate:.2f}/s, p50 {sample.p50:.0f} ms, CPU {sample.cpu_ms:.0f} "
                f"ms/image, other processes {sample.others:.2f} cores",
                file=sys.stderr,
            )
            if (path, c) in samples:
                samples[path, c].add(sample)
            else:
                samples[path, c] = sample
    return [samples[row] for row in rows]


def rapidocr_words(rendered: Sequence[Any]) -> list[list[str]]:
    """The words ``rapidocr`` called directly reads in each image (sorted: its own order)."""
    from rapidocr import RapidOCR

    from aiweb.vision.ocr import engine_params

    engine = RapidOCR(params=engine_params())
    words = []
    for pixels in rendered:
        raw: Any = engine(pixels[:, :, ::-1].copy())
        words.append(sorted(" ".join(raw.txts or ()).split()))
    return words


def compare(results: Results, work: Work, samples: list[Sample]) -> None:
    """Every HTTP answer against the direct single instance's at c=1 (and each other)."""
    reference = next(s for s in samples if s.path == LOCKED and s.concurrency == 1)
    total = min(len(work.pictures), work.per_run)  # the pictures every row answered
    for sample in samples:
        if sample is not reference:
            same = sum(reference.answers.get(i) == a for i, a in sample.answers.items())
            results.checks.append(
                f"{work.model}, {sample.path} c={sample.concurrency}: the same "
                f"{'text' if work.model == 'ocr' else 'boxes'} as the library at c=1 on "
                f"{same}/{total} images"
            )
            results.passed &= same == total and len(sample.answers) == total
        if sample.errors:
            results.checks.append(
                f"{work.model}, {sample.path} c={sample.concurrency}: {len(sample.errors)} "
                f"failed; first: {sample.errors[0]}"
            )
            results.passed = False


# --------------------------------------------------------------------------- the server


def rss(root: int) -> dict[str, int]:
    from bench.serving import process_tree, status_kib

    tree = process_tree(root)
    return {
        "rss": sum(status_kib(p, "VmRSS") for p in tree) * 1024,
        "hwm": sum(status_kib(p, "VmHWM") for p in tree) * 1024,
        "processes": len(tree),
    }


def install(aiweb: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [aiweb, "models", "install", *MODELS],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"aiweb models install failed:\n{proc.stdout}{proc.stderr}")


def run(
    data_home: Path,
    face_names: Sequence[str],
    rendered: Sequence[Any],
    face_requests: int,
    rounds: int,
    keep: bool,
) -> tuple[str, bool]:
    """Start the server, measure both models, stop it: the report and whether it passed."""
    from bench.serving import (
        UNLIMITED,
        base_env,
        create_key,
        free_port,
        start_server,
        stop_server,
        tree_cpu_s,
        wait_ready,
        work_dir,
    )

    results = Results()
    aiweb = str(Path(sys.executable).parent / "aiweb")
    works = [face_work(data_home / "images", face_names, face_requests), ocr_work(rendered)]
    import numpy as np

    with work_dir(keep) as tmp:
        home = tmp / "home"
        home.mkdir()
        env = base_env(home, data_home)
        env.pop("AIWEB_DATABASE_URL", None)  # SQLite in the temporary home
        port = free_port()
        cmd = [aiweb, "serve", "--port", str(port), "--workers", "1"]
        server = start_server("aiweb", cmd, env | UNLIMITED, port, tmp)
        try:
            wait_ready(server, lambda c: c.get("/readyz").status_code == 200, 2)
            results.rss["empty"] = rss(server.proc.pid)["rss"]
            install(aiweb, env)
            key = create_key(aiweb, env, "bench-vision")
            import httpx

            headers = {"authorization": f"Bearer {key}"}
            with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
                photo = works[0].pictures[0]
                for model in MODELS:  # loads each (installed after the start)
                    picture = works[1].pictures[0] if model == "ocr" else photo
                    resp = client.post(
                        f"/v1/models/{model}/predict",
                        content=picture.data,
                        headers=headers | {"content-type": picture.media_type},
                    )
                    if resp.status_code != 200:
                        raise RuntimeError(f"{model}: HTTP {resp.status_code} {resp.text}")
                ready = client.get("/readyz").json()
            results.loaded = list(ready.get("loaded", []))
            missing = [m for m in MODELS if not any(s.startswith(f"{m}:") for s in results.loaded)]
            if missing or not ready.get("ready"):
                raise RuntimeError(f"/readyz does not list {missing}: {ready}")
            loaded = rss(server.proc.pid)
            results.rss["loaded"] = loaded["rss"]
            results.rss["loaded_peak"] = loaded["hwm"]
            results.rss["processes"] = loaded["processes"]

            def server_cpu() -> float:
                return tree_cpu_s(server.proc.pid)

            for work in works:
                results.samples[work.model] = measure(work, server.url, key, server_cpu, rounds)
                compare(results, work, results.samples[work.model])
            white = png(np.full((BLANK, BLANK, 3), 255, np.uint8))
            blank = Work("faces", [Picture("blank", white, "image/png")], BLANK_REQUESTS)
            results.fixed = measure(blank, server.url, key, server_cpu, rounds, (1,))
            after = rss(server.proc.pid)
            results.rss["after"] = after["rss"]
            results.rss["peak"] = after["hwm"]
        finally:
            stop_server(server)
    ocr = results.samples["ocr"]
    http = next(s for s in ocr if s.path == "HTTP" and s.concurrency == 1)
    words = rapidocr_words(rendered)
    same = sum(sorted(str(http.answers.get(i, "")).split()) == w for i, w in enumerate(words))
    results.checks.append(
        f"ocr, HTTP: the same words as rapidocr called directly on {same}/{len(words)} images"
    )
    results.passed &= same == len(words)
    return report(results, works)


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {cpu} · {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable) · Python {platform.python_version()} · "
        "aiweb serve --workers 1"
    )


def report(results: Results, works: Sequence[Work]) -> tuple[str, bool]:
    rows = [
        [
            "model",
            "path",
            "c",
            "images",
            "images/s",
            "p50 ms",
            "p99 ms",
            "CPU ms/image",
            "client CPU",
            "overhead",
            "others' cores",
        ]
    ]
    verdicts: list[str] = []
    passed = results.passed
    for work in works:
        samples = results.samples[work.model]
        for c in CONCURRENCIES:
            base = next(s for s in samples if s.path == LOCKED and s.concurrency == c)
            for s in (s for s in samples if s.concurrency == c):
                overhead = base.rate / s.rate - 1
                rows.append(
                    [
                        work.model,
                        s.path,
                        str(c),
                        str(s.images),
                        f"{s.rate:.2f}",
                        f"{s.p50:.0f}",
                        f"{s.p99:.0f}",
                        f"{s.cpu_ms:.0f}",
                        f"{1000 * s.bench_cpu_s / s.images:.1f}" if s.path == "HTTP" else "",
                        "" if s is base else f"{overhead:+.1%}",
                        f"{s.others:.2f}",
                    ]
                )
                if s.path == "HTTP" and c == max(CONCURRENCIES):
                    ok = overhead <= OVERHEAD_MAX
                    passed &= ok
                    verdicts.append(
                        f"{work.model}: HTTP overhead at c={c} {overhead:+.1%} "
                        f"(bar <= {OVERHEAD_MAX:.0%}) -> {'PASS' if ok else 'FAIL'}"
                    )
    text = machine() + "\n\n"
    text += table(
        "images through HTTP vs the library in process (overhead: the extra time per image "
        "against the '+ lock' row at the same c; CPU: the server's for HTTP, this process's "
        "for direct; client CPU: the HTTP clients', ms/image; others' cores: CPU other "
        "processes used over the run)",
        rows,
    )
    direct, http = results.fixed
    client_ms = 1000 * http.bench_cpu_s / http.images
    text += (
        f"\nthe route's fixed cost (a blank {BLANK}x{BLANK} PNG to faces, c=1, "
        f"{http.images} requests): p50 {http.p50:.1f} ms vs {direct.p50:.1f} ms direct "
        f"(+{http.p50 - direct.p50:.1f} ms); CPU {http.cpu_ms:.1f} ms/request (the server) "
        f"vs {direct.cpu_ms:.1f} ms direct; the client's CPU {client_ms:.1f} ms/request\n"
    )
    rss = results.rss
    text += (
        f"\nserver RSS (VmRSS of its {rss['processes']} process(es)): "
        f"{rss['empty'] / MB:.0f} MB with no model, {rss['loaded'] / MB:.0f} MB with "
        f"{', '.join(results.loaded)} loaded (one request each; peak so far "
        f"{rss['loaded_peak'] / MB:.0f} MB), {rss['after'] / MB:.0f} MB "
        f"after the runs (peak VmHWM {rss['peak'] / MB:.0f} MB); MB = 10^6 bytes\n"
    )
    text += "\n" + "\n".join(results.checks) + "\n"
    text += "\n" + "\n".join(verdicts) + "\n"
    text += f"HTTP half: {'PASS' if passed else 'FAIL'}\n"
    return text, passed
