"""Vision: faces, people and text (OCR) in images, with models that ship inside
packages (OpenCV's cascades and HOG people detector, rapidocr's ONNX models): nothing is
downloaded at run time.

- :mod:`aiweb.vision.detectors`: :class:`~aiweb.vision.detectors.FaceDetector` and
  :class:`~aiweb.vision.detectors.PeopleDetector` on 8-bit RGB pixels, with non-maximum
  suppression;
- :mod:`aiweb.vision.ocr`: :class:`~aiweb.vision.ocr.OcrReader`, lines of text in
  reading order.

Detection only: no identification, no face embeddings, no age, gender or emotion
estimates (docs/vision.md).
"""

__all__ = ["detectors", "ocr"]
