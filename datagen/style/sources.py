"""Where content and style images come from: scikit-image's photos (embedded) or local folders.

A `Pool` is a list of named images, listed on the driver (names, captions, paths: small) and
loaded lazily in each worker through the guarded loader, then centre-cropped to a square of
the configured size. Embedded photos are named "skimage:<name>", folder images by their path
relative to the folder, so the same images elsewhere give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datagen.images import ImageRejected, load_image

# The embedded contents: photos with a subject a caption can name (textures and near-black
# astronomy photos make poor contents: a stylised star field is still black).
EMBEDDED = {
    "astronaut": "an astronaut in an orange suit in front of a flag",
    "coffee": "a cup of espresso on a saucer",
    "chelsea": "the face of a tabby cat",
    "rocket": "a rocket on its launch pad at dusk",
    "camera": "a cameraman with his camera on a tripod",
    "coins": "rows of old coins",
    "motorcycle": "a motorcycle parked in a garage",
}
EMBEDDED_URI = "embedded:skimage-photos@1"


@dataclass(frozen=True)
class PoolImage:
    name: str  # "skimage:astronaut" or the path relative to the folder
    caption: str  # what prompts call it
    path: str = ""  # local file; empty for embedded photos


def embedded_pool() -> list[PoolImage]:
    return [PoolImage(f"skimage:{k}", v) for k, v in EMBEDDED.items()]


def folder_pool(folder: str, flag: str) -> list[PoolImage]:
    """Images of a local folder, captions from `<stem>.txt` (else the file's stem in words)."""
    from datagen.conditions.image_folder import list_images

    if "://" in folder and not folder.startswith("file://"):
        raise ValueError(f"{flag} {folder}: the style product reads local folders only (copy the images here first)")
    listed = list_images(folder, flag)
    return [PoolImage(f.name, f.caption or Path(f.name).stem.replace("_", " ").replace("-", " "), f.uri)
            for f in listed.files]


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    return np.dstack([img] * 3) if img.ndim == 2 else np.ascontiguousarray(img[:, :, :3])


def square(img: np.ndarray, size: int) -> np.ndarray:
    """The centred square crop, resized to size x size (area-averaged when shrinking)."""
    h, w = img.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(img[y:y + side, x:x + side, :3])
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return crop if side == size else cv2.resize(crop, (size, size), interpolation=interp)


class Loader:
    """Per worker: pool images loaded once each (a bounded cache), as size x size RGB."""

    def __init__(self, size: int, max_cached: int = 64):
        self.size, self.max_cached = size, max_cached
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, image: PoolImage) -> np.ndarray:
        """Pixels of `image`; ImageRejected for a file that does not decode."""
        if image.name not in self._cache:
            if len(self._cache) >= self.max_cached:
                self._cache.pop(next(iter(self._cache)))
            self._cache[image.name] = square(self.raw(image), self.size)
        return self._cache[image.name]

    @staticmethod
    def raw(image: PoolImage) -> np.ndarray:
        """The image at its own size (not cached)."""
        try:
            return _skimage(image.name.split(":", 1)[1]) if not image.path else \
                load_image(image.path, keep_alpha=False).pixels
        except ImageRejected as exc:
            raise ImageRejected(exc.reason, f"{image.name}: {exc.detail}") from exc
