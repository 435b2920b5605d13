"""Vision: faces, people and text (OCR) in images, with models that ship inside
packages (OpenCV's cascades and HOG people detector, rapidocr's ONNX models): nothing is
downloaded at run time.

- :mod:`aiweb.vision.detectors`: :class:`~aiweb.vision.detectors.FaceDetector` and
  :class:`~aiweb.vision.detectors.PeopleDetector` on 8-bit RGB pixels, with non-maximum
  suppression;
- :mod:`aiweb.vision.ocr`: :class:`~aiweb.vision.ocr.OcrReader`, lines of text in
  reading order;
- :mod:`aiweb.vision.model`: a registered version's runtime; :mod:`aiweb.vision.builtin`:
  ``aiweb models install faces people ocr``;
- :mod:`aiweb.vision.service`: serving (decode, predict, log, draw with
  :mod:`aiweb.vision.overlay`); :mod:`aiweb.vision.schemas`: the API shapes;
  :mod:`aiweb.vision.task`: the task of the list.

Detection only: no identification, no face embeddings, no age, gender or emotion
estimates (docs/vision.md).
"""

__all__ = [
    "builtin",
    "detectors",
    "jobs",
    "model",
    "ocr",
    "overlay",
    "pages",
    "schemas",
    "service",
    "task",
]
