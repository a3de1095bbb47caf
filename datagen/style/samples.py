"""One style sample from its sample RNG: pick the content, the style and (style.id) the person,
then render the target with a built-in look or ask a generator backend for it.

- style.transfer (iMontage): [content, style] -> the content in that style;
- style.ref (DreamO's style task): [style] + a caption -> a new picture in that style;
- style.id (DreamO's ID + style): [a person's head-and-shoulders crop, style] + a caption ->
  that person in that style. The crop is mirrored half the time, so it is not a copy.

With the classical backend a look's name is known, so the instruction names it too, and the
target is `looks.render(look, content)`: true by construction. The leakage check runs after
(`datagen.scoring.leakage`, applied by the product), for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from datagen.schema import Picture, Region, Reject, Sample
from datagen.storyboard.faces import FaceBox
from datagen.storyboard.generators import GenerationFailed
from datagen.style import looks
from datagen.style.sources import Loader, PoolImage, square

GENERATOR = "datagen.style@1"
ID_TRIES = 16  # contents tried for a face before style.id gives up with a reject
FACE_SIDE = 384

TEMPLATES = {
    "style.transfer": (
        "Redraw <image 1> in the style of <image 2>{paren}.",
        "Keep the content of <image 1> and give it the look of <image 2>{paren}.",
        "Restyle <image 1> to match <image 2>{paren}; keep its layout.",
        "Apply the style of <image 2> to <image 1>{paren}.",
    ),
    "style.ref": (
        "Draw {caption} in the style of <image 1>{paren}.",
        "{Caption}, rendered in the look of <image 1>{paren}.",
        "Make a picture of {caption}; match the style of <image 1>{paren}.",
    ),
    "style.id": (
        "Show the person from <image 1> in the style of <image 2>{paren}: {caption}.",
        "Keep the identity of the person in <image 1> and render {caption} in the style of <image 2>{paren}.",
        "A picture of the person in <image 1>, {caption}, styled like <image 2>{paren}.",
    ),
}
PROMPTS = {
    "style.transfer": "{caption}, {words}",
    "style.ref": "{caption}, {words}",
    "style.id": "{caption}, {words}, the same person as in the reference photo",
}


@dataclass
class Pools:
    contents: list[PoolImage]
    styles: list[PoolImage] = field(default_factory=list)  # empty: looks on other contents


@dataclass
class Style:
    pixels: np.ndarray
    source: str  # "look:pencil@skimage:coffee" or a style image's name
    look: str | None  # the built-in look's name, when the style is one


def _pick(rng, pool: list, avoid: str = ""):
    options = [p for p in pool if p.name != avoid] or pool
    return options[int(rng.integers(len(options)))]


def _square_around(box, grow: float, size: int) -> tuple[int, int, int]:
    """(x0, y0, side) of a square head-and-shoulders crop, kept inside the image."""
    side = int(min(size, max(8, round(grow * max(box.w, box.h)))))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2 + 0.25 * box.h
    x0 = int(min(max(0, round(cx - side / 2)), size - side))
    y0 = int(min(max(0, round(cy - side / 2)), size - side))
    return x0, y0, side


class StyleMaker:
    """Per worker: pools, image loader, backend and face tools; `make(task, rng)` -> Sample | Reject."""

    def __init__(self, cfg, pools: Pools, backend=None, face_filter=None):
        self.cfg, self.pools, self.backend, self.face_filter = cfg, pools, backend, face_filter
        self.load = Loader(cfg.size)
        self._faces: dict[str, object] = {}

    # ------------------------------------------------------------------ choices
    def _style(self, rng, content: PoolImage) -> Style:
        if self.pools.styles:
            img = _pick(rng, self.pools.styles)
            return Style(self.load(img), img.name, None)
        look = list(looks.LOOKS)[int(rng.integers(len(looks.LOOKS)))]
        carrier = _pick(rng, self.pools.contents, avoid=content.name)
        return Style(looks.render(look, self.load(carrier)), f"look:{look}@{carrier.name}", look)

    def _face(self, image: PoolImage):
        """The one prominent face of a content (a box on the size x size square), or None; cached
        per worker. Found at >= FACE_SIDE px: a cascade misses faces a small canvas still shows."""
        if image.name not in self._faces:
            side = max(self.cfg.size, FACE_SIDE)
            pixels = square(self.load.raw(image), side)
            found = None
            if self.face_filter(pixels) is None:
                f = max(self.face_filter.detector.detect(pixels), key=lambda b: b.w * b.h)
                k = self.cfg.size / side
                found = FaceBox(f.x * k, f.y * k, f.w * k, f.h * k, f.score)
            self._faces[image.name] = found
        return self._faces[image.name]

    # ------------------------------------------------------------------ one sample
    def make(self, task: str, rng) -> Sample | Reject:
        face = None
        content = _pick(rng, self.pools.contents)
        if task == "style.id":
            # Walk the pool from a random start: a pool with one portrait in seven still finds it.
            pool = self.pools.contents
            start = pool.index(content)
            for j in range(min(len(pool), ID_TRIES)):
                content = pool[(start + j) % len(pool)]
                face = self._face(content)
                if face is not None:
                    break
            else:
                return Reject("no_face", f"none of {min(len(pool), ID_TRIES)} contents shows one prominent face",
                              task=task, stage="generate", generator=GENERATOR)
        pixels = self.load(content)
        style = self._style(rng, content)
        words = looks.words(style.look) if style.look else ""
        fields = {"caption": content.caption, "Caption": content.caption[:1].upper() + content.caption[1:],
                  "paren": f" ({words})" if words else ""}
        k = int(rng.integers(len(TEMPLATES[task])))
        instruction = TEMPLATES[task][k].format(**fields)
        fmt, size = self.cfg.image_format, self.cfg.size
        inputs, regions, meta = [], [], {"content": content.name, "caption": content.caption, "style": style.source,
                                         "look": style.look, "look_words": words or None, "template": k}
        if task == "style.transfer":
            inputs.append(Picture(pixels, "content", fmt))
        elif task == "style.id":
            x0, y0, side = _square_around(face, self.cfg.face_grow, size)
            mirror = bool(rng.random() < 0.5)
            crop = pixels[y0:y0 + side, x0:x0 + side]
            crop = np.ascontiguousarray(crop[:, ::-1]) if mirror else crop
            inputs.append(Picture(square(crop, size), "identity", fmt))
            fx0 = (face.x - x0) / side
            fx1 = (face.x + face.w - x0) / side
            fx0, fx1 = (1 - fx1, 1 - fx0) if mirror else (fx0, fx1)
            regions.append(Region("face:0", "input", 0, box=_clip_box(fx0, (face.y - y0) / side, fx1,
                                                                     (face.y + face.h - y0) / side)))
            meta |= {"identity_crop_px": [x0, y0, x0 + side, y0 + side], "identity_mirrored": mirror}
        inputs.append(Picture(style.pixels, "style", fmt))

        seed = int(rng.integers(0, 2**31 - 1))
        if self.backend is None:
            target = looks.render(style.look, pixels)
            meta |= {"backend": f"classical@{looks.VERSION}", "reference_mode": "exact"}
        else:
            prompt = PROMPTS[task].format(caption=content.caption, words=words or "in the style of the reference image")
            refs = [p.pixels for p in inputs]
            try:
                target = self.backend.generate(prompt, seed=seed, width=size, height=size, references=refs)
            except GenerationFailed as err:
                return Reject(err.reason, f"{task}: {err.detail}", source=f"generator:{self.backend.tag}", task=task,
                              stage="generate", meta=meta, generator=GENERATOR)
            meta |= {"backend": self.backend.tag, "prompt": prompt, "seed": seed,
                     "reference_mode": getattr(self.backend, "reference_mode", "unknown")}
        if task == "style.id" and self.backend is None:
            regions.append(Region("face:0", "output", 0, box=face.normalised(size, size)))
        sources = [content.name, style.source]
        return Sample(task=task, instruction=instruction, inputs=inputs, outputs=[Picture(target, "target", fmt)],
                      regions=regions, meta=meta, source_ids=sources, generator=GENERATOR)


def _clip_box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    c = [min(1.0, max(0.0, v)) for v in (x0, y0, x1, y1)]
    return (c[0], c[1], c[2], c[3])
