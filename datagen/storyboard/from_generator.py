"""Storyboards from a generator backend, driven by seeded instruction templates.

The per-sample RNG picks a character, a setting and per-panel actions and framings from the
versioned template file; panel prompts and captions are filled from the same choices, so a
caption says exactly what its panel was asked to show. Character references are given by
the caller (photos, earlier renders) or generated first from the character's description;
either way they pass the reference filters (face, NSFW) before any panel is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from datagen.images import to_rgb
from datagen.prompts import load_prompt
from datagen.schema import Picture, Reject, Sample
from datagen.scoring.base import Scorer, apply_scorer
from datagen.storyboard.config import TASK, StoryboardConfig, panel_instruction
from datagen.storyboard.generators import GenerationFailed

GENERATOR = "datagen.storyboard.generator@1"
ReferenceFilter = Callable[[np.ndarray], Reject | None]


def plan_story(config: StoryboardConfig, rng: np.random.Generator) -> dict:
    """All random choices of one storyboard, made up front so the plan is inspectable."""
    t = load_prompt(config.templates)
    n = int(rng.integers(config.min_panels, config.max_panels + 1))
    actions = t.lines("actions")
    if n > len(actions):
        raise ValueError(f"{n} panels but only {len(actions)} distinct actions in {config.templates}")
    shots = t.lines("shots")
    return {
        "character": str(rng.choice(t.lines("characters"))),
        "setting": str(rng.choice(t.lines("settings"))),
        "actions": [actions[i] for i in rng.choice(len(actions), size=n, replace=False)],
        "shots": [str(rng.choice(shots)) for _ in range(n)],
        "seeds": [int(s) for s in rng.integers(0, 2**31 - 1, size=n + 1)],  # [reference, panels...]
    }


def storyboard_from_generator(
    config: StoryboardConfig,
    rng: np.random.Generator,
    generator,
    *,
    references: Sequence[np.ndarray] | None = None,
    reference_filters: Sequence[ReferenceFilter] = (),
    scorers: Sequence[Scorer] = (),
    source: str = "",
) -> tuple[list[Sample], list[Reject]]:
    """One storyboard, or the reject that stopped it."""
    t = load_prompt(config.templates)
    plan = plan_story(config, rng)
    generator.setup()
    src = source or f"generator:{generator.tag}"

    if references:
        refs = [to_rgb(r) for r in references]
        ref_origin = "given"
    else:
        prompt = t.render("reference_prompt", character=plan["character"])
        try:
            refs = [generator.generate(prompt, seed=plan["seeds"][0], width=config.width, height=config.height, references=[])]
        except GenerationFailed as err:
            return [], [_reject(err.reason, f"reference: {err.detail}", src, plan)]
        ref_origin = "generated"
    for k, ref in enumerate(refs):
        for hook in reference_filters:
            rej = hook(ref)
            if rej is not None:
                return [], [_reject(f"reference_{rej.reason}", f"reference {k}: {rej.detail}", src, plan, "filter")]

    panels, captions, prompts = [], [], []
    subject = config.subject[:1].upper() + config.subject[1:]
    for k, (action, shot) in enumerate(zip(plan["actions"], plan["shots"])):
        fields = {"character": plan["character"], "setting": plan["setting"], "action": action, "shot": shot}
        prompt = t.render("panel_prompt", **fields)
        try:
            img = generator.generate(prompt, seed=plan["seeds"][k + 1], width=config.width, height=config.height, references=refs)
        except GenerationFailed as err:
            return [], [_reject(err.reason, f"panel {k + 1}: {err.detail}", src, plan)]
        panels.append(img)
        prompts.append(prompt)
        captions.append(t.render("caption", subject=subject, **fields))

    fmt = config.image_format
    sample = Sample(
        task=TASK,
        instruction=panel_instruction(captions, config.templates),
        inputs=[Picture(r, "reference", fmt) for r in refs],
        outputs=[Picture(p, "target", fmt) for p in panels],
        meta={
            "source_kind": "generator",
            "captions": captions,
            "caption_source": config.templates,
            "panel_prompts": prompts,
            "plan": plan,
            "reference_origin": ref_origin,
            "reference_mode": getattr(generator, "reference_mode", "unknown"),
            "generator_backend": generator.tag,
        },
        source_ids=[src],
        generator=GENERATOR,
    )
    samples, rejects = [sample], []
    for scorer in scorers:
        samples, more = apply_scorer(scorer, samples)
        rejects += more
    return samples, rejects


def _reject(reason: str, detail: str, source: str, plan: dict, stage: str = "generate") -> Reject:
    return Reject(reason=reason, detail=detail, source=source, task=TASK, stage=stage, meta={"plan": plan}, generator=GENERATOR)
