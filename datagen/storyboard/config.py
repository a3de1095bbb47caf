"""Settings shared by both storyboard sources (video keyframes and a generator backend)."""

from __future__ import annotations

from dataclasses import dataclass

TASK = "storyboard"


@dataclass
class StoryboardConfig:
    min_panels: int = 2
    max_panels: int = 4
    # Keyframes: a panel joins the story when its face crop resembles the reference's
    # (identity_similarity) at least this much - or, without a face detector, when the whole
    # frames' colours agree this much (colour_similarity) ...
    min_identity: float = 0.45
    min_colour: float = 0.7
    # ... and differs from the reference and the previous panel (pHash distance) this much.
    min_panel_distance: float = 0.15
    face_grow: float = 2.2  # reference crop = face box grown this much (head and shoulders)
    subject: str = "the character"  # how captions refer to the subject
    # Generator: panel size and where the templates live.
    width: int = 512
    height: int = 512
    templates: str = "storyboard_templates_v1"
    max_side: int | None = 512
    image_format: str = "jpeg"


def panel_instruction(captions: list[str], templates: str) -> str:
    """'Create a 3-panel storyboard with the character in <image 1>. Panel 1: ... Panel 2: ...'"""
    from datagen.prompts import load_prompt

    text = " ".join(f"Panel {k + 1}: {c}" for k, c in enumerate(captions))
    return load_prompt(templates).render("instruction", n=len(captions), captions=text)
