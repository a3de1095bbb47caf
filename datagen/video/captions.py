"""Instructions for video pairs: templates from measured camera motion, or a local VLM.

Templates say only what was measured (camera pan/zoom/roll from the motion model, the time
gap), so they are true by construction. The optional VLM backend loads a transformers
image-text-to-text model from a local folder (no hub), shows it both frames and asks for
the change as an instruction; an empty answer falls back to the template.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from datagen.video.motion import MotionEstimate
from datagen.weights import require_files

TEMPLATES = {
    "pair": [
        "Show the same scene as <image 1> {gap} later{camera}.",
        "Generate the frame that follows <image 1> after {gap}{camera}.",
        "Continue the video from <image 1>: what does the scene look like {gap} later{camera}?",
        "Predict the next moment of <image 1>, {gap} on{camera}.",
    ],
    "cut": [
        "Cut from <image 1> to the next shot of the same video.",
        "Show the shot that follows <image 1> after a cut.",
        "Generate the next shot after <image 1>: same video, new camera angle or scene.",
    ],
    "stitched": [
        "Cut from <image 1> to a closer shot later in the same video.",
        "Show a tighter framing from later in the video of <image 1>.",
        "Jump ahead in the video of <image 1> and frame the scene more closely.",
    ],
    # {order}: "later" or "earlier", where shot B lies in the video relative to shot A.
    "recut": [
        "Cut from <image 1> to {order_article} {order} shot of the same video.",
        "Re-edit the video of <image 1>: cut to a moment of {order_article} {order} shot.",
        "Show {order_article} {order} shot from the same footage as <image 1>, as if the editor cut to it here.",
    ],
}
VLM_PROMPT = (
    "The first image is a video frame and the second is a later frame of the same video. "
    "Write one short instruction that turns the first image into the second."
)
VLM_FILES = ("config.json", "preprocessor_config.json|processor_config.json", "tokenizer.json|tokenizer.model")


def camera_words(est: MotionEstimate, diagonal: float) -> list[str]:
    """Plain words for the camera part of the motion, largest first; [] when it holds still."""
    words = []
    dx, dy = est.pan_px
    # Content moving left means the camera turned right.
    if abs(dx) > 0.01 * diagonal:
        words.append((abs(dx), "the camera pans " + ("right" if dx < 0 else "left")))
    if abs(dy) > 0.01 * diagonal:
        words.append((abs(dy), "the camera tilts " + ("down" if dy < 0 else "up")))
    zoom_px = abs(est.zoom - 1.0) * diagonal / 2
    if abs(math.log(max(est.zoom, 1e-6))) > 0.02:
        words.append((zoom_px, "the camera zooms " + ("in" if est.zoom > 1 else "out")))
    roll_px = abs(math.radians(est.rotation_deg)) * diagonal / 2
    if abs(est.rotation_deg) > 1.0:
        # Content turning counter-clockwise on screen means the camera rolled clockwise.
        words.append((roll_px, "the camera rolls " + ("clockwise" if est.rotation_deg > 0 else "counter-clockwise")))
    return [w for _, w in sorted(words, key=lambda x: -x[0])]


def _gap_words(gap_s: float) -> str:
    return "one second" if abs(gap_s - 1.0) < 0.05 else f"{gap_s:.1f} seconds"


def template_instruction(kind: str, rng: np.random.Generator, *, gap_s: float = 0.0, camera: list[str] = (),
                         order: str = "") -> str:
    options = TEMPLATES[kind]
    text = options[int(rng.integers(len(options)))]
    if kind == "recut":
        return text.format(order=order, order_article="an" if order[:1] in "aeiou" else "a")
    if kind != "pair":
        return text
    cam = f", as {' and '.join(camera[:2])}" if camera else ""
    return text.format(gap=_gap_words(gap_s), camera=cam)


# --------------------------------------------------------------------------- VLM backend
def check_vlm_dir(folder: str | Path) -> Path:
    """The folder, or MissingWeights naming every missing file and where it looked."""
    folder = Path(folder)
    require_files("VLM captioner", folder, [tuple(names.split("|")) for names in VLM_FILES],
                  hint="put a transformers image-text-to-text model (save_pretrained layout) there")
    return folder


class VLMCaptioner:
    def __init__(self, folder: str | Path, max_new_tokens: int = 40):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = check_vlm_dir(folder)
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval()
        self.max_new_tokens = max_new_tokens

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray) -> str:
        import torch
        from PIL import Image

        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": VLM_PROMPT}]}
        ]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        images = [Image.fromarray(frame_a), Image.fromarray(frame_b)]
        inputs = self.processor(images=images, text=prompt, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()


@functools.lru_cache(maxsize=1)
def load_vlm(folder: str, max_new_tokens: int = 40) -> VLMCaptioner:
    """One captioner per worker process (loading weights per video would dominate)."""
    return VLMCaptioner(folder, max_new_tokens)


def vlm_instruction(text: str) -> str:
    """Anchor a free-form VLM answer to the input image placeholder."""
    text = " ".join(text.split())
    return f"Edit <image 1>: {text}" if "<image 1>" not in text else text
