"""Everything the style product can be told, declared once (CLI options, flow parameters,
deployment form, card and lineage derive from it)."""

from __future__ import annotations

from dataclasses import dataclass

from datagen.params import ProductConfig, param
from datagen.scoring import specs
from datagen.storyboard.generators import generator_kind

TASKS = ("style.transfer", "style.ref", "style.id")
CLASSICAL = "classical"


def expand_tasks(wanted: tuple[str, ...]) -> tuple[str, ...]:
    if not wanted:
        return TASKS
    unknown = [t for t in wanted if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown style task {unknown[0]!r}; choose from: {', '.join(TASKS)}")
    return tuple(t for t in TASKS if t in wanted)


@dataclass(frozen=True)
class StyleConfig(ProductConfig):
    num: int = param(help="Number of samples to plan (each becomes a sample or a reject).", min=1, max=10**9,
                     content=False)
    tasks: tuple[str, ...] = param((), "Comma-separated tasks (default: all): style.transfer (content + style -> "
                                   "stylised content, iMontage), style.ref (style + prompt -> new image, DreamO), "
                                   "style.id (a person's reference + style -> that person stylised, DreamO).")
    generator: str = param(CLASSICAL, "classical (built-in looks in integer arithmetic: targets true by "
                           "construction, no weights), diffusers:/local/pipeline or an http(s):// endpoint.")
    contents: str | None = param(None, "Local folder of content photos (captions from <stem>.txt). Default: the "
                                 "embedded scikit-image photos.", content=False)
    styles: str | None = param(None, "Local folder of style reference images, for a diffusers/http generator. "
                               "Default: the built-in looks applied to other photos.", content=False)
    size: int = param(256, "Side of the square images, pixels.", min=32, max=2048)
    scorers: tuple[str, ...] = param((), f"Extra scorers, comma-separated: {', '.join(specs.CLASSICAL)}, or a "
                                     "model-backed one with its local folder (clip=DIR, vlm=DIR, vlm-rubric=DIR).")
    min_style_distance: float = param(0.2, "Reject an output whose pHash distance to the style image is below this "
                                      "(it is the style image: content leakage).", min=0.0, max=1.0)
    min_content_change: float = param(6.0, "Reject an output whose mean difference to the content image is below "
                                      "this many grey levels (nothing was stylised).", min=0.0, max=255.0)
    min_content_structure: float = param(0.2, "Reject an output whose structure similarity to the content is below "
                                         "this (the content did not survive).", min=-1.0, max=1.0, advanced=True)
    min_identity_distance: float = param(0.2, "style.id: reject an output whose pHash distance to the identity "
                                         "reference is below this (the reference pasted).", min=0.0, max=1.0,
                                         advanced=True)
    face_grow: float = param(2.2, "style.id: the identity reference is the face box grown this much.", min=1.0,
                             max=6.0, advanced=True)
    image_format: str = param("png", "Format of stored images.", choices=("png", "jpeg"), advanced=True)

    def validate(self) -> None:
        object.__setattr__(self, "tasks", expand_tasks(self.tasks))
        if self.generator != CLASSICAL:
            generator_kind(self.generator)
        elif self.styles:
            raise ValueError("--styles needs a diffusers or http --generator: the classical backend renders its own "
                             "style references (its looks on other photos)")
        specs.parse(self.scorers)
