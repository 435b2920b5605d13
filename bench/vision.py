"""Vision quality and cost: in process, and (``--http``) through the predict route
(issue #25's ``bench/vision.py``).

    python -m bench.vision [--sentences 120] [--seed 0] [--markdown FILE]
    python -m bench.vision --http [--http-sentences 40] [--face-requests 96] [--rounds 4]
        [--check] [--keep]

1. **Faces and people** on the twelve photographs of ``AIWEB_DATA_HOME/images`` against
   the people and faces their ``SOURCE.md`` lists (:data:`TRUTH`; written by inspection,
   without boxes). Scored at the image level by counts: in an image with ``e`` expected
   and ``d`` detected, ``min(d, e)`` are found, ``max(0, d - e)`` are false and
   ``max(0, e - d)`` missed; precision and recall sum those over the images. Faces that
   ``SOURCE.md`` calls "partly" or "mostly hidden" are left out of the face score (a
   detection there is neither right nor wrong). The table lists what was missed.
2. **OCR**: character error rate (CER: the Levenshtein distance between the recognised
   and the true text over the true text's length, Morris et al. 2004's definition used
   by every OCR benchmark; whitespace runs made one space first) on SST-2 dev sentences
   rendered here — the fonts of Debian's ``fonts-dejavu-core`` and ``fonts-liberation``,
   14-40 px, rotated up to ±2°, Gaussian noise (sigma 8 of 255) — and on a scanned-like
   page (one page of 20 sentences at 150 dpi, rotated 0.7°, blurred, noisy, saved as a
   JPEG of quality 60). ``aiweb.vision.ocr.OcrReader`` must give the same lines as
   ``rapidocr`` called directly (``same text`` in the table).
3. **Cost**: milliseconds per image of each detector and of OCR, in this process.
4. ``--http`` (instead of 1-3; :mod:`bench.vision_http`): images/s and p50/p99 per image
   of ``faces`` (the twelve photographs) and ``ocr`` (the first ``--http-sentences`` of
   the images of part 2) through ``aiweb serve`` at concurrency 1 and 4, against decode
   and the same model in this process (one instance behind a lock, as the server runs a
   version, and one instance per thread); the bar is HTTP's overhead at c=4 <= 15%; the
   answers must be the library's (OCR: and rapidocr's words); the server's RSS with the
   three models loaded.

Needs ``opencv-python-headless<5``, ``rapidocr`` and the fonts; standard library only at
import, so that ``--help`` starts nothing heavy.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import table

REPO = Path(__file__).resolve().parents[1]

#: image -> (people, faces, faces left out of the score) as SOURCE.md lists them
TRUTH: dict[str, tuple[int, int, int]] = {
    "skimage_astronaut.png": (1, 1, 0),
    "skimage_camera.png": (1, 0, 1),  # face partly hidden by the camera
    "skimage_coffee.png": (0, 0, 0),
    "skimage_chelsea.png": (0, 0, 0),  # a cat
    "skimage_rocket.jpg": (0, 0, 0),
    "pexels_women_on_phones.jpg": (2, 2, 0),
    "interfaces_002.jpg": (1, 1, 0),
    "interfaces_003.jpg": (1, 0, 1),  # face mostly hidden behind a camera
    "interfaces_010.jpg": (1, 1, 0),
    "interfaces_017.jpg": (1, 1, 0),  # in profile
    "interfaces_023.jpg": (1, 1, 0),
    "grace_hopper.jpg": (1, 1, 0),
}

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
FONT_NAMES = (
    "DejaVuSans.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationSerif-Regular.ttf",
    "LiberationMono-Regular.ttf",
)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def cer(predicted: str, truth: str) -> float:
    """Character error rate (module docs)."""
    p, t = squeeze(predicted), squeeze(truth)
    return levenshtein(p, t) / max(1, len(t))


def detokenize(sentence: str) -> str:
    """SST-2's tokenised text as written: ``it 's`` -> ``it's``, ``word ,`` -> ``word,``."""
    s = sentence.strip()
    s = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", s)
    s = re.sub(r" ([,.;:!?)])", r"\1", s)
    s = re.sub(r"([(]) ", r"\1", s)
    return s.replace("-lrb- ", "(").replace(" -rrb-", ")").replace("`` ", '"').replace(" ''", '"')


def fonts() -> list[Path]:
    found = [Path(d) / n for d in FONT_DIRS for n in FONT_NAMES if (Path(d) / n).is_file()]
    if not found:
        sys.exit("no fonts: apt-get install fonts-dejavu-core fonts-liberation")
    return found


def render(text: str, font: Path, size: int, angle: float, rng: random.Random) -> Any:
    """``text`` on a white canvas in ``font`` at ``size`` px, rotated by ``angle``
    degrees, with Gaussian noise: uint8 RGB."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(str(font), size)
    left, top, right, bottom = face.getbbox(text)
    margin = size
    size_px = (round(right - left) + 2 * margin, round(bottom - top) + 2 * margin)
    image = Image.new("L", size_px, 255)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, fill=0, font=face)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    pixels = np.asarray(image, dtype=np.float64)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 8.0, pixels.shape)
    gray = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def scanned_page(sentences: list[str], font: Path, rng: random.Random) -> tuple[Any, str]:
    """An A4 page at 150 dpi (1240 x 1754 px) of ``sentences`` wrapped in 11-pt text,
    rotated 0.7°, blurred, noisy and JPEG-compressed (quality 60): the pixels and the
    true text (lines joined by line breaks)."""
    import io
    import textwrap

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    face = ImageFont.truetype(str(font), 23)  # 11 pt at 150 dpi
    lines = textwrap.wrap(" ".join(sentences), width=88)
    image = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((120, 150 + n * 36), line, fill=20, font=face)
    image = image.rotate(0.7, resample=Image.Resampling.BICUBIC, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    pixels = np.asarray(image, dtype=np.float64)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 10.0, pixels.shape)
    noisy = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=60)
    decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(decoded), "\n".join(lines)


def load_rgb(path: Path) -> Any:
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def detection_section(images: Path) -> str:
    from aiweb.vision.detectors import FaceDetector, PeopleDetector

    detectors: dict[str, FaceDetector | PeopleDetector] = {
        "faces": FaceDetector.from_package(),
        "people": PeopleDetector(),
    }
    counts = {name: [0, 0, 0] for name in detectors}  # found, false, missed
    costs: dict[str, list[float]] = {name: [] for name in detectors}
    rows = [["image", "size", "people (true)", "people found", "faces (true)", "faces found"]]
    missed: list[str] = []
    for name, (people, faces, hidden) in TRUTH.items():
        pixels = load_rgb(images / name)
        found: dict[str, int] = {}
        for what, detector in detectors.items():
            started = time.perf_counter()
            found[what] = len(detector.detect(pixels))
            costs[what].append((time.perf_counter() - started) * 1000)
        for what, expected in (("people", people), ("faces", faces)):
            d = found[what]
            if what == "faces" and hidden:
                continue  # neither right nor wrong (module docs)
            counts[what][0] += min(d, expected)
            counts[what][1] += max(0, d - expected)
            counts[what][2] += max(0, expected - d)
            if d < expected:
                missed.append(f"{name}: {expected - d} of {expected} {what}")
            elif d > expected:
                missed.append(f"{name}: {d - expected} false {what}")
        rows.append(
            [
                name,
                f"{pixels.shape[1]}x{pixels.shape[0]}",
                str(people),
                str(found["people"]),
                f"{faces}" + (f" (+{hidden} hidden)" if hidden else ""),
                str(found["faces"]),
            ]
        )
    text = table("detections per image (counts; SOURCE.md's lists)", rows)
    summary = [["detector", "found", "false", "missed", "precision", "recall", "ms/image p50"]]
    for what, (tp, fp, fn) in counts.items():
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        summary.append(
            [
                what,
                str(tp),
                str(fp),
                str(fn),
                f"{precision:.2f}",
                f"{recall:.2f}",
                f"{statistics.median(costs[what]):.0f}",
            ]
        )
    text += "\n" + table("image-level precision and recall", summary)
    text += "\nwhat was wrong: " + ("; ".join(missed) or "nothing") + "\n"
    return text


def sst2_sentences(data_home: Path) -> list[str]:
    with open(data_home / "sst2" / "dev.tsv", encoding="utf-8", newline="") as f:
        return [detokenize(row["sentence"]) for row in csv.DictReader(f, delimiter="\t")]


def rendered(
    sentences: list[str], n: int, rng: random.Random
) -> Iterator[tuple[str, Path, int, Any]]:
    """``n`` sentences drawn with ``rng``, each rendered (module docs): ``(sentence, font,
    size, pixels)``. The draws are made as the images are asked for, so what ``rng`` gives
    afterwards depends on all ``n`` having been taken."""
    for k, sentence in enumerate(rng.sample(sentences, n)):
        font = fonts()[k % len(fonts())]
        size = rng.randint(14, 40)
        yield sentence, font, size, render(sentence, font, size, rng.uniform(-2.0, 2.0), rng)


def ocr_section(data_home: Path, n: int, seed: int) -> str:
    from rapidocr import RapidOCR

    from aiweb.vision.ocr import OcrReader, engine_params

    rng = random.Random(seed)
    sentences = sst2_sentences(data_home)
    reader = OcrReader()
    direct = RapidOCR(params=engine_params())  # the same engine, called directly
    by_font: dict[str, list[float]] = {}
    by_size: dict[str, list[float]] = {}
    times: list[float] = []
    same = 0
    worst: list[tuple[float, str, str, str]] = []
    for sentence, font, size, pixels in rendered(sentences, n, rng):
        started = time.perf_counter()
        result = reader.read(pixels)
        times.append((time.perf_counter() - started) * 1000)
        raw: Any = direct(pixels[:, :, ::-1].copy())
        same += sorted(result.text.split()) == sorted(" ".join(raw.txts or ()).split())
        error = cer(result.text, sentence)
        worst.append((error, f"{font.stem} {size}px", sentence, result.text))
        by_font.setdefault(font.stem, []).append(error)
        band = "14-21 px" if size < 22 else "22-30 px" if size < 31 else "31-40 px"
        by_size.setdefault(band, []).append(error)
    all_errors = [e for v in by_font.values() for e in v]
    rows = [["rendered SST-2 dev sentences", "n", "CER (mean)", "exact (CER 0)"]]
    for label, groups in (("font", by_font), ("size", by_size)):
        for key, errors in sorted(groups.items()):
            rows.append(
                [
                    f"{label} {key}",
                    str(len(errors)),
                    f"{statistics.mean(errors):.4f}",
                    f"{sum(e == 0 for e in errors) / len(errors):.0%}",
                ]
            )
    rows.append(
        [
            "all",
            str(len(all_errors)),
            f"{statistics.mean(all_errors):.4f}",
            f"{sum(e == 0 for e in all_errors) / len(all_errors):.0%}",
        ]
    )
    text = table(f"OCR, seed {seed}", rows)
    page, truth = scanned_page(rng.sample(sentences, 20), fonts()[4 % len(fonts())], rng)
    started = time.perf_counter()
    result = reader.read(page)
    page_ms = (time.perf_counter() - started) * 1000
    text += (
        f"\nscanned-like page ({page.shape[1]}x{page.shape[0]}, {len(truth.splitlines())} lines): "
        f"CER {cer(result.text, truth):.4f}, {len(result.lines)} lines read, {page_ms:.0f} ms\n"
        f"same text as rapidocr called directly: {same}/{n} images\n"
        f"ms per sentence image: p50 {statistics.median(times):.0f}, "
        f"p90 {statistics.quantiles(times, n=10)[-1]:.0f}\n"
    )
    worst.sort(key=lambda w: -w[0])
    text += "\nworst sentences (CER, font, true -> read):\n" + "".join(
        f"  {e:.3f} {where}: {truth!r} -> {read!r}\n" for e, where, truth, read in worst[:5] if e
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.vision", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--sentences", type=int, default=120, help="rendered sentences (120)")
    parser.add_argument("--seed", type=int, default=0, help="(0)")
    parser.add_argument("--data-home", type=Path, default=None, help="AIWEB_DATA_HOME")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    http = parser.add_argument_group("the HTTP half (bench/vision_http.py)")
    http.add_argument("--http", action="store_true", help="run it instead of parts 1-3")
    http.add_argument(
        "--http-sentences", type=int, default=40, help="OCR images: the first N rendered (40)"
    )
    http.add_argument("--face-requests", type=int, default=96, help="face images per row (96)")
    http.add_argument("--rounds", type=int, default=4, help="rounds the rows alternate in (4)")
    http.add_argument("--keep", action="store_true", help="keep its work directory")
    http.add_argument("--check", action="store_true", help="exit 1 when its bar or a check fails")
    args = parser.parse_args(argv)
    if min(args.sentences, args.face_requests, args.rounds) < 1:
        parser.error("--sentences, --face-requests, --rounds >= 1")
    if args.http and not 1 <= args.http_sentences <= args.sentences:
        parser.error("1 <= --http-sentences <= --sentences")
    if args.http and args.rounds > min(args.http_sentences, args.face_requests):
        parser.error("--rounds <= --http-sentences and --face-requests (images per round)")
    data_home = Path(
        args.data_home or os.environ.get("AIWEB_DATA_HOME") or REPO.parent / "shared" / "data"
    ).resolve()
    passed = True
    if args.http:
        from bench import vision_http

        images = rendered(sst2_sentences(data_home), args.sentences, random.Random(args.seed))
        pixels = [p for _, _, _, p in itertools.islice(images, args.http_sentences)]
        text, passed = vision_http.run(
            data_home, list(TRUTH), pixels, args.face_requests, args.rounds, args.keep
        )
    else:
        text = (
            detection_section(data_home / "images")
            + "\n"
            + ocr_section(data_home, args.sentences, args.seed)
        )
    print(text)
    if args.markdown is not None:
        args.markdown.write_text("```\n" + text + "```\n", encoding="utf-8")
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
