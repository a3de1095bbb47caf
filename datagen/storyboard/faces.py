"""Face detection for character references and panels, from local model files only.

Backends:
- `CascadeFaceDetector`: OpenCV's LBP frontal-face cascade (`lbpcascade_frontalface_opencv.xml`),
  run by scikit-image's `Cascade`. scikit-image ships the file, so it works on any machine
  with the project installed; pass another cascade XML to use your own. (OpenCV 5 dropped
  `CascadeClassifier`, hence scikit-image.)
- `YuNetFaceDetector`: OpenCV's YuNet CNN (`face_detection_yunet_2023mar.onnx` from the
  opencv_zoo repository) through `cv2.FaceDetectorYN`; more robust to pose and lighting.

`FaceFilter` turns a detector into a reference-filter hook: `hook(image) -> Reject | None`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datagen.schema import Reject
from datagen.weights import require_file


@dataclass(frozen=True)
class FaceBox:
    x: float  # pixels, top-left
    y: float
    w: float
    h: float
    score: float = 1.0

    def normalised(self, width: int, height: int) -> tuple[float, float, float, float]:
        x0, y0 = max(0.0, self.x / width), max(0.0, self.y / height)
        x1, y1 = min(1.0, (self.x + self.w) / width), min(1.0, (self.y + self.h) / height)
        return (x0, y0, x1, y1)


def default_cascade_path() -> Path:
    from skimage import data

    return Path(data.lbp_frontal_face_cascade_filename())


class CascadeFaceDetector:
    def __init__(
        self,
        cascade_path: str | Path | None = None,
        *,
        min_side_frac: float = 0.08,
        scale_factor: float = 1.2,
        min_neighbors: int = 6,
    ):
        self.cascade_path = Path(cascade_path) if cascade_path is not None else None
        self.min_side_frac = min_side_frac
        self.scale_factor = scale_factor
        # 6 window hits per face: at the library default (4) the astronaut's suit and badges
        # read as faces; at 6 only her face does, and ~90% of LFW faces are still found.
        self.min_neighbors = min_neighbors
        self._cascade = None
        self.tag = "face_cascade@1"

    def setup(self) -> None:
        if self._cascade is not None:
            return
        from skimage.feature import Cascade

        path = self.cascade_path or default_cascade_path()
        require_file(path, "face detector (LBP cascade)", "pass cascade_path= to an OpenCV cascade XML")
        self._cascade = Cascade(str(path))

    def detect(self, img: np.ndarray) -> list[FaceBox]:
        self.setup()
        # Work at <= 512 px: the cascade's cost grows with area and faces stay detectable.
        scale = min(1.0, 512 / max(img.shape[:2]))
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img
        side = max(16, int(self.min_side_frac * min(small.shape[:2])))
        found = self._cascade.detect_multi_scale(
            img=small,
            scale_factor=self.scale_factor,
            step_ratio=1,
            min_size=(side, side),
            max_size=(min(small.shape[:2]), min(small.shape[:2])),
            min_neighbor_number=self.min_neighbors,
        )
        boxes = [FaceBox(d["c"] / scale, d["r"] / scale, d["width"] / scale, d["height"] / scale) for d in found]
        return _merge_overlaps(boxes)


class YuNetFaceDetector:
    def __init__(self, model_path: str | Path, *, score_threshold: float = 0.8):
        self.model_path = Path(model_path)
        self.score_threshold = score_threshold
        self._net = None
        self.tag = f"face_yunet@1+{self.model_path.name}"

    def setup(self) -> None:
        if self._net is not None:
            return
        require_file(
            self.model_path,
            "face detector (YuNet)",
            "get face_detection_yunet_2023mar.onnx from the opencv_zoo repository",
        )
        self._net = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), self.score_threshold)

    def detect(self, img: np.ndarray) -> list[FaceBox]:
        self.setup()
        h, w = img.shape[:2]
        self._net.setInputSize((w, h))
        _, faces = self._net.detect(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if faces is None:
            return []
        return [FaceBox(float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[14])) for f in faces]


def _merge_overlaps(boxes: list[FaceBox], overlap: float = 0.5) -> list[FaceBox]:
    """Cascades fire several times around one face at nearby scales; keep the largest box of
    each group (boxes overlapping by more than `overlap` of the smaller one's area)."""
    kept: list[FaceBox] = []
    for b in sorted(boxes, key=lambda b: b.w * b.h, reverse=True):
        if all(_overlap(b, k) < overlap for k in kept):
            kept.append(b)
    return kept


def _overlap(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy / (min(a.w * a.h, b.w * b.h) + 1e-9)


def crop_around(img: np.ndarray, box: FaceBox, grow: float = 2.2) -> np.ndarray:
    """A head-and-shoulders crop: the face box grown `grow` times, shifted down a little."""
    h, w = img.shape[:2]
    cx, cy = box.x + box.w / 2, box.y + box.h / 2 + 0.25 * box.h
    half = grow * max(box.w, box.h) / 2
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    return np.ascontiguousarray(img[y0:y1, x0:x1])


class FaceFilter:
    """Reference hook: `min_faces..max_faces` prominent faces (side >= `min_face_frac` of the
    image's short side). Smaller faces - people in the background, or a cascade's false hit
    on a badge - do not count; if only such small faces exist the reason is face_too_small."""

    def __init__(self, detector, *, min_faces: int = 1, max_faces: int = 1, min_face_frac: float = 0.15):
        self.detector = detector
        self.min_faces = min_faces
        self.max_faces = max_faces
        self.min_face_frac = min_face_frac
        self.tag = f"face_filter@1+{detector.tag}"

    def setup(self) -> None:
        self.detector.setup()

    def __call__(self, img: np.ndarray) -> Reject | None:
        faces = self.detector.detect(img)
        short = min(img.shape[:2])
        prominent = [f for f in faces if max(f.w, f.h) >= self.min_face_frac * short]
        if len(prominent) < self.min_faces:
            if faces:
                side = max(max(f.w, f.h) for f in faces) / short
                return self._reject("face_too_small", f"largest face is {side:.1%} of the short side (< {self.min_face_frac:.0%})")
            return self._reject("no_face", f"no face found, need {self.min_faces}")
        if len(prominent) > self.max_faces:
            return self._reject("too_many_faces", f"{len(prominent)} faces found, allow {self.max_faces}")
        return None

    def _reject(self, reason: str, detail: str) -> Reject:
        return Reject(reason=reason, detail=detail, stage="filter", generator=self.tag)
