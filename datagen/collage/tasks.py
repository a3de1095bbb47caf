"""The task registry, the spec the harness passes in, and `generate`.

`generate(spec, rng)` is pure: every random choice comes from `rng`. A draw that cannot
be completed (no room for an object, too little contrast) is redrawn from the same rng;
only after `spec.attempts` unlucky draws does it return a Reject with the last reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from datagen.collage import (
    drag,
    edit,
    inpaint,
    multiturn,
    ref,
    seg,
    subjects,
    t2i_layout,
    t2i_shapes,
    t2i_text,
)
from datagen.collage.compose import Unlucky
from datagen.collage.pack import AssetPack
from datagen.portable import portable_cv
from datagen.schema import Reject, Sample

# task -> (make(rng, spec, prepared pack) -> Sample, the module that owns it)
REGISTRY: dict[str, tuple[Callable, ModuleType]] = {
    "t2i.text": (t2i_text.make, t2i_text),
    "t2i.shapes": (t2i_shapes.make, t2i_shapes),
    "t2i.layout": (t2i_layout.make, t2i_layout),
    "inpaint": (inpaint.make_inpaint, inpaint),
    "outpaint": (inpaint.make_outpaint, inpaint),
    "edit.add": (edit.make_add, edit),
    "edit.remove": (edit.make_remove, edit),
    "edit.replace": (edit.make_replace, edit),
    "edit.subject": (subjects.make_edit_subject, subjects),
    "edit.subjects": (subjects.make_edit_subjects, subjects),
    "drag.translate": (drag.make_translate, drag),
    "drag.scale": (drag.make_scale, drag),
    "drag.rotate": (drag.make_rotate, drag),
    "ref.canny": (ref.make_canny, ref),
    "ref.seg": (ref.make_seg, ref),
    "ref.subject": (ref.make_subject, ref),
    "ref.subject_varied": (subjects.make_varied, subjects),
    "ref.subjects_varied": (subjects.make_varied_multi, subjects),
    "ref.canvas": (subjects.make_canvas, subjects),
    "seg.mask": (seg.make_mask, seg),
    "det.box": (seg.make_box, seg),
    "edit.multiturn": (multiturn.make, multiturn),
}
TASKS: tuple[str, ...] = tuple(REGISTRY)

MIN_SIZE, MAX_SIZE = 64, 4096
# edit.add's canvas: "blank" = a plain colour, as DreamOmni adds objects on blank backgrounds;
# "any" = a pack photo 70% of the time, else a plain colour or a gradient.
ADD_BACKGROUNDS = ("blank", "any")


@dataclass(frozen=True)
class CollageSpec:
    task: str  # one of TASKS
    size: int = 512  # output images are size x size
    assets: AssetPack | None = None  # None: the embedded starter pack
    max_objects: int = 3  # objects on a canvas besides the edited one (at most)
    max_turns: int = 4  # edit.multiturn draws 2..max_turns turns
    caption_p: float = 0.5  # inpaint: share of instructions that also caption the picture
    attempts: int = 30  # unlucky draws before giving up with a Reject
    add_background: str = "blank"  # edit.add: one of ADD_BACKGROUNDS

    def __post_init__(self) -> None:
        if self.task not in REGISTRY:
            raise ValueError(f"unknown collage task {self.task!r}; choose from: {', '.join(TASKS)}")
        if not MIN_SIZE <= int(self.size) <= MAX_SIZE:
            raise ValueError(f"size {self.size} must be in [{MIN_SIZE}, {MAX_SIZE}] px")
        if self.max_objects < 1:
            raise ValueError("max_objects must be at least 1")
        if not 2 <= self.max_turns <= 4:
            raise ValueError("max_turns must be 2, 3 or 4")
        if not 0.0 <= self.caption_p <= 1.0:
            raise ValueError("caption_p must be a probability")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.add_background not in ADD_BACKGROUNDS:
            raise ValueError(f"add_background {self.add_background!r}: choose from {', '.join(ADD_BACKGROUNDS)}")


def generate(spec: CollageSpec, rng) -> Sample | Reject:
    """One sample of `spec.task`; sample_id/index/seed/run_id are left to the harness."""
    from datagen.collage.starter_pack import starter_pack

    # Collage pixels use exact paths (integer resizes, fixed-point warps); the baseline-kernel
    # mode is insurance for the float decisions among them (contrast checks, placements).
    with portable_cv():
        return _generate(spec, rng, starter_pack)


def _generate(spec: CollageSpec, rng, starter_pack) -> Sample | Reject:
    pack = (spec.assets if spec.assets is not None else starter_pack()).prepared(int(spec.size))
    make, module = REGISTRY[spec.task]
    reasons: dict[str, int] = {}
    for attempt in range(spec.attempts):
        try:
            sample = make(rng, spec, pack)
        except Unlucky as exc:
            reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
            continue
        sample.meta["canvas_px"] = int(spec.size)
        sample.meta["attempt"] = attempt + 1
        return sample
    last = max(reasons, key=reasons.get) if reasons else "no_draw"
    return Reject(reason=last, detail=f"{spec.task}: no valid draw in {spec.attempts} attempts ({reasons})",
                  task=spec.task, stage="generate", meta={"unlucky": reasons, "canvas_px": int(spec.size)},
                  generator=f"{module.__name__}@{module.VERSION}")
