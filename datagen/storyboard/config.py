"""Everything the storyboard product can be told, declared once (CLI options, flow parameters,
deployment form, card and lineage derive from it), for both sources: the shots of videos
and a generator backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from datagen.params import ProductConfig, param
from datagen.scoring import specs
from datagen.storyboard.generators import generator_kind

TASK = "storyboard"


@dataclass(frozen=True)
class StoryboardConfig(ProductConfig):
    # ---------------------------------------------------------------- sources (exactly one)
    videos: str | None = param(None, "Folder (or object-store prefix) of videos: one storyboard per video, from "
                               "its shots that keep one subject.", content=False)
    generator: str | None = param(None, "diffusers:/local/pipeline or an http(s):// endpoint; makes --num "
                                  "storyboards from templates.")
    num: int = param(8, "Storyboards to generate with --generator.", min=1, max=10_000_000, content=False)
    # ---------------------------------------------------------------- filters and scorers
    scorers: tuple[str, ...] = param(("consistency", "diversity"), "Scorers, comma-separated: "
                                     f"{', '.join(specs.CLASSICAL)}, or a model-backed one with its local folder "
                                     "(clip=DIR, vlm=DIR, vlm-rubric=DIR).")
    faces: bool = param(True, "Character references must show one face.")
    nsfw: str | None = param(None, "Local image-classifier folder for the NSFW filter.")
    sample_fps: float = param(2.0, "Frames sampled per second when reading videos.", min=0.05, max=30.0,
                              flag="--fps")
    # ---------------------------------------------------------------- panels
    min_panels: int = param(2, "Fewest panels in a storyboard.", min=1, max=16, advanced=True)
    max_panels: int = param(4, "Most panels in a storyboard.", min=1, max=16, advanced=True)
    # Keyframes: a panel joins the story when its face crop resembles the reference's
    # (identity_similarity) at least this much - or, without a face detector, when the whole
    # frames' colours agree this much (colour_similarity) ...
    min_identity: float = param(0.45, "Keyframes: least identity similarity of a panel's face crop to the "
                                "reference's.", min=0.0, max=1.0, advanced=True)
    min_colour: float = param(0.7, "Keyframes without a face detector: least colour similarity of a panel to the "
                              "reference.", min=0.0, max=1.0, advanced=True)
    # ... and differs from the reference and the previous panel (pHash distance) this much.
    min_panel_distance: float = param(0.15, "Keyframes: least pHash distance of a panel to the reference and to "
                                      "the previous panel.", min=0.0, max=1.0, advanced=True)
    face_grow: float = param(2.2, "Reference crop = the face box grown this much (head and shoulders).", min=1.0,
                             max=10.0, advanced=True)
    subject: str = param("the character", "How captions refer to the subject.", advanced=True)
    width: int = param(512, "Generator: panel width, pixels.", min=16, max=4096, advanced=True)
    height: int = param(512, "Generator: panel height, pixels.", min=16, max=4096, advanced=True)
    templates: str = param("storyboard_templates_v1", "Generator: the versioned template file of prompts and "
                           "captions.", advanced=True)
    max_side: int | None = param(512, "Long side of decoded frames and stored panels, pixels (null, from a flow or "
                                 "Python: the source size).", min=64, max=8192, advanced=True)
    image_format: str = param("jpeg", "Format of stored images.", choices=("jpeg", "png"), advanced=True)

    def validate(self) -> None:
        if bool(self.videos) == bool(self.generator):
            raise ValueError("give exactly one of --videos DIR or --generator SPEC")
        if self.generator:
            generator_kind(self.generator)
        specs.parse(self.scorers)
        if self.min_panels > self.max_panels:
            raise ValueError(f"min_panels ({self.min_panels}) must be <= max_panels ({self.max_panels})")


def panel_instruction(captions: list[str], templates: str) -> str:
    """'Create a 3-panel storyboard with the character in <image 1>. Panel 1: ... Panel 2: ...'"""
    from datagen.prompts import load_prompt

    text = " ".join(f"Panel {k + 1}: {c}" for k, c in enumerate(captions))
    return load_prompt(templates).render("instruction", n=len(captions), captions=text)
