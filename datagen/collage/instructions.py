"""Instruction wording: several templates per task, chosen with the sample's rng.

Templates only arrange facts the generator already made true; `<image k>` names the k-th
input (1-based). Every template of a task uses the same fields, so any choice is correct.
"""

from __future__ import annotations

TEMPLATES: dict[str, tuple[str, ...]] = {
    "t2i.text": (
        'The text "{text}" written in {style} {colour} {family} letters {where}, on {background}.',
        '{background_cap} with the words "{text}" {where} in {colour} {style} {family}, {size_word} size.',
        'Render "{text}" in {colour} {family} ({style}, {size_word}) {where} of {background}.',
        '{size_word_cap} {colour} text reading "{text}" {where}, set in {family} {style}, on {background}.',
    ),
    "t2i.shapes": (
        "{groups} on {background}.",
        "Draw {groups}, on {background}.",
        "A simple picture of {groups}; the background is {background}.",
        "Flat shapes on {background}: {groups}.",
    ),
    "t2i.layout": (
        "{relations}, on {background}.",
        "A collage on {background}: {relations}.",
        "Arrange the stickers like this: {relations}. Background: {background}.",
        "Compose an image on {background} with {relations}.",
    ),
    "inpaint": (
        "Fill in the grey hole of <image 1>; <image 2> marks it in white.{caption}",
        "Inpaint the region of <image 1> that is white in the mask <image 2>.{caption}",
        "Restore the missing part of <image 1> (mask: <image 2>) so the picture looks complete.{caption}",
        "<image 2> shows which pixels of <image 1> are missing; paint them in.{caption}",
    ),
    "outpaint": (
        "Extend <image 1> {direction} to a {width}x{height} picture; {keep}.",
        "Outpaint <image 1> {direction}: the result is {width}x{height} and {keep}.",
        "Widen the view of <image 1> {direction} so it fills {width}x{height} pixels ({keep}).",
        "Continue the scene in <image 1> {direction}; {keep}, final size {width}x{height}.",
    ),
    "edit.add": (
        "Add {obj} {where} of <image 1>.",
        "Place {obj} {where} of <image 1>.",
        "In <image 1>, put {obj} {where}.",
        "Insert {obj} into <image 1>, {where}.",
    ),
    "edit.remove": (
        "Remove the {obj} from <image 1>.",
        "Delete the {obj} {where} of <image 1>.",
        "Erase the {obj} in <image 1> and show the background behind it.",
        "Take the {obj} out of <image 1>.",
    ),
    "edit.replace": (
        "Replace the {obj} in <image 1> with {new}.",
        "In <image 1>, swap the {obj} for {new}, in the same place.",
        "Turn the {obj} {where} of <image 1> into {new}.",
        "Change the {obj} in <image 1> to {new}.",
    ),
    "drag.translate": (
        "In <image 1>, {points}.",
        "Move the {obj} in <image 1> {way}: {points}.",
        "Drag the {obj} of <image 1> to its new place: {points}. Keep everything else unchanged.",
        "Edit <image 1> by dragging: {points}.",
    ),
    "drag.scale": (
        "In <image 1>, {points}.",
        "Make the {obj} in <image 1> {bigger} by dragging: {points}.",
        "Resize the {obj} of <image 1> about its center ({factor}x): {points}.",
        "Edit <image 1> by dragging: {points}.",
    ),
    "drag.rotate": (
        "In <image 1>, {points}.",
        "Rotate the {obj} in <image 1> {turn} by dragging: {points}.",
        "Turn the {obj} of <image 1> by {degrees} degrees {turn}: {points}.",
        "Edit <image 1> by dragging: {points}.",
    ),
    "ref.canny": (
        "Generate an image that follows the canny edges in <image 1>: {caption}.",
        "<image 1> is an edge map. Draw {caption} with exactly these edges.",
        "Using the edge map <image 1> as structure, create {caption}.",
        "Canny-to-image: {caption}. Edges: <image 1>.",
    ),
    "ref.seg": (
        "Generate an image from the segmentation map <image 1>, where {legend}; the rest is {background}.",
        "<image 1> is a segmentation map ({legend}). Fill it in as a picture on {background}.",
        "Paint the layout of <image 1>: {legend}, on {background}.",
        "Segmentation to image. Legend: {legend}. Background: {background}. Map: <image 1>.",
    ),
    "ref.subject": (
        "Place {subjects} on {background}: {placement}.",
        "Compose a new picture on {background} with {subjects}; {placement}.",
        "Using the objects shown in {refs}, make an image on {background} with {placement}.",
        "Put {subjects} on {background} ({placement}).",
    ),
    "ref.subject_varied": (
        "Place {subjects} on {background}: {placement}.",
        "Compose a new picture on {background} with {subjects}; {placement}.",
        "<image 1> shows an object. Make an image on {background} with {placement}.",
        "Put {subjects} on {background} ({placement}).",
    ),
    "ref.subjects_varied": (
        "Place {subjects} on {background}: {placement}.",
        "Compose a new picture on {background} with {subjects}; {placement}.",
        "Using the objects shown in {refs}, make an image on {background} with {placement}.",
        "Put {subjects} on {background} ({placement}).",
    ),
    "ref.canvas": (
        "Starting from the blank canvas <image 1>, paint {background} with {subjects}: {placement}.",
        "Turn the empty canvas <image 1> into a picture of {subjects} on {background}; {placement}.",
        "Edit the blank <image 1>: fill it with {background} and add the objects of {refs}, {placement}.",
        "On the blank canvas <image 1>, compose {subjects} on {background} ({placement}).",
    ),
    "edit.subject": (
        "Insert the {obj} from <image 2> into <image 1>, {where}.",
        "Add the {obj} shown in <image 2> {where} of <image 1>.",
        "Put the object from <image 2> {where} of <image 1>; keep everything else unchanged.",
        "In <image 1>, place the {obj} of <image 2> {where}.",
    ),
    "edit.subjects": (
        "Insert {subjects} into <image 1>: {placement}.",
        "Add the objects of {refs} to <image 1>, {placement}; keep everything else unchanged.",
        "In <image 1>, place {subjects}: {placement}.",
        "Edit <image 1> by adding {subjects} ({placement}).",
    ),
    "seg.mask": (
        "Highlight the {obj} in <image 1> with a translucent {colour} mask.",
        "Segment the {obj} in <image 1>: cover it with a half-transparent {colour} overlay.",
        "Mark every pixel of the {obj} in <image 1> in see-through {colour}.",
        "Show the segmentation mask of the {obj} over <image 1>, in {colour}.",
    ),
    "det.box": (
        "Draw a {colour} bounding box around the {obj} in <image 1>.",
        "Detect the {obj} in <image 1> and frame it with a {colour} box.",
        "Put a {thickness}px {colour} rectangle around the {obj} in <image 1>.",
        "Locate the {obj} in <image 1>; outline its bounding box in {colour}.",
    ),
    "edit.multiturn": (
        "Starting from <image 1>, make these edits in order and show the picture after each. {turns}",
        "Edit <image 1> step by step. {turns}",
        "Apply {n} edits to <image 1>, one per turn. {turns}",
        "Multi-turn editing of <image 1>. {turns}",
    ),
}


def say(rng, task: str, **fields) -> tuple[str, int]:
    """One template of `task`, filled in; returns (text, template index) for meta."""
    options = TEMPLATES[task]
    k = int(rng.integers(len(options)))
    return options[k].format(**fields), k


def listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def number(v: float, signed: bool = False) -> str:
    v = round(float(v), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def drag_text(points: list[tuple[float, float, float, float]]) -> str:
    """'drag the point (0.31, 0.42) by (+0.12, -0.05) and the point ...' (normalised units)."""
    parts = [f"the point ({number(x)}, {number(y)}) by ({number(dx, True)}, {number(dy, True)})"
             for x, y, dx, dy in points]
    return "drag " + listing(parts)


COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
