"""The training card a reviewer reads, on the two-stage run of tests/test_training_job.py (made
once per session and published by the training flow): every task the run indexed is listed
with its samples and loss over the WHOLE run (t2i.photo is weighted 0 in the last stage, so a
last-10%-of-steps table would drop it), the generations sit in fixed columns, the stage table
says what each stage read and kept, the lineage picture highlights the latest checkpoint,
and the commands are short lines. The pure pieces (truncation warning, fixed-column grid,
small multiples) are checked on small inputs.
"""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from datagen.images import decode
from tests.test_training_job import BOUNDARY, STEPS, reference, setup  # noqa: F401  (the same run, made once)
from training import job
from training.lineage import read_node
from training.report import artifact_key, stages_section, task_rows, text_section
from training.report_samples import GENERATED, INPUT, TARGET, grid_png

PHOTO_TASKS = ["edit.add", "edit.remove", "t2i.photo", "video.pair"]


def _images(card: str) -> dict[str, np.ndarray]:
    return {alt: decode(base64.b64decode(data)) for alt, data in
            re.findall(r"!\[([^\]]*)\]\(data:image/png;base64,([^)]+)\)", card)}


def _section(card: str, title: str) -> str:
    return card.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def card(reference):  # noqa: F811
    """The card the training flow published (Prefect test harness), newest version."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, TaskRunFilter
    from prefect.client.schemas.sorting import ArtifactSort

    name = read_node(reference["run_dir"])["name"]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(name)])),
                                     flow_run_filter=FlowRunFilter(), task_run_filter=TaskRunFilter(), limit=1,
                                     offset=0, sort=ArtifactSort.CREATED_DESC)
    assert arts, "the training flow published no card"
    return arts[0].data


def test_every_task_is_listed_with_samples_and_loss_over_the_whole_run(card, reference):  # noqa: F811
    history = job.read_history(reference["run_dir"])
    assert all("t2i.photo" not in r["tasks"] for r in history[BOUNDARY:])  # absent from the last stage ...
    table = _section(card, "Loss")
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| (\d+) \| ([^|]+) \| ([^|]+) \|$",
                                          table, re.M)}
    assert sorted(rows) == PHOTO_TASKS  # ... and still listed, as is any task no step drew
    drawn = {t: sum(r["task_samples"].get(t, 0) for r in history) for t in PHOTO_TASKS}
    assert drawn["t2i.photo"] > 0 and drawn["edit.add"] > 0
    for task, (indexed, samples, steps, mean, last) in rows.items():
        assert int(indexed) == 6 and int(samples) == drawn[task]  # 24 rows, 4 tasks round-robin
        seen = [r for r in history if task in r["tasks"]]
        assert int(steps) == len(seen)
        if not seen:
            assert (mean.strip(), last.strip()) == ("-", "never drawn")
            assert re.search(rf"^\*\*Never drawn:\*\* .*`{re.escape(task)}`", table, re.M)
            continue
        value, step = last.split(" @ ")
        assert int(step) == seen[-1]["step"] and float(value) == pytest.approx(seen[-1]["tasks"][task], abs=1e-4)
        want = np.average([r["tasks"][task] for r in seen], weights=[r["task_samples"][task] for r in seen])
        assert float(mean) == pytest.approx(want, abs=1e-4)
    assert int(rows["t2i.photo"][4].split(" @ ")[1]) < BOUNDARY
    assert 0 < sum(drawn.values()) <= sum(r["samples"] for r in history)  # real samples only, no filler rows


def test_the_stage_table_and_details_say_what_each_stage_read_and_kept(card, setup):  # noqa: F811
    stages = _section(card, "Stages")
    assert re.search(rf"^\| \*\*pretrain\*\* \| 0-{BOUNDARY - 1} \| 0.002 constant \| 512 tok \| cocktail \| 24 \| 0 \|$",
                     stages, re.M), stages
    assert re.search(rf"^\| \*\*hq\*\* \| {BOUNDARY}-{STEPS - 1} \| 0.001 linear \| 512 tok \| volume \| 24 \| 0 \|$",
                     stages, re.M), stages
    assert "curriculum t2i -&gt; edit" in stages and "task weights t2i: 0" in stages
    assert stages.count("row filter: none (all rows); 24 rows kept, 0 left out; resolution") == 2
    assert "resolution 24; batch up to 512 image tokens (&lt;= 4 samples); LR 0.001 linear with 0 warm-up" in stages
    # a filter and rows left out by reason, on the stage records as the job writes them
    node = {"stages": [{"name": "hq", "start": 0, "steps": 4, "lr": 1e-3, "lr_schedule": "linear", "batch_size": 4,
                        "resolution": 32, "mix": "volume", "where": "vlm_rating >= 4", "where_missing": "drop",
                        "drop_flagged": True, "datasets": ["/d/a.lance@3"], "datasets_asked": ["/d/a.lance@reviewed"],
                        "index": {"rows": 7, "skipped": {"filtered": 5, "flagged": 2}}}]}
    text = "\n".join(stages_section(node))
    assert "| **hq** | 0-3 | 0.001 linear | 4 | volume | 7 | 7 |" in text
    assert "`vlm_rating >= 4` (a row without the score: drop) and rows flagged in review left out" in text
    assert "7 rows kept, 7 left out; left out: `filtered` 5, `flagged` 2" in text
    assert "(asked /<wbr>d/<wbr>a.lance@reviewed)" in text


def _frame_lines(image: np.ndarray, colour: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(y, first x, last x) of the horizontal frame lines drawn in `colour` (rows with >= 40 such pixels)."""
    mask = np.all(image == colour, axis=-1)
    return [(int(y), int(np.flatnonzero(mask[y])[0]), int(np.flatnonzero(mask[y])[-1]))
            for y in np.flatnonzero(mask.sum(axis=1) >= 40)]


def test_generations_sit_in_fixed_columns(card):
    image = _images(card)["generations"]
    blue, green = _frame_lines(image, GENERATED), _frame_lines(image, TARGET)
    # a top and a bottom frame line (2 px each) per row, one row per task of the photo set ...
    assert len(blue) == len(green) == 4 * len(PHOTO_TASKS)
    # ... and the generated column spans the same pixels in every row, the target right of it
    assert len({(x0, x1) for _, x0, x1 in blue}) == 1 and len({(x0, x1) for _, x0, x1 in green}) == 1
    assert green[0][1] > blue[0][2]
    # the input column is there in every row (grey frames, or the empty "none" cell of t2i.photo)
    assert len(_frame_lines(image, INPUT)) == 4 * (len(PHOTO_TASKS) - 1)


def test_the_grid_keeps_columns_for_rows_without_inputs_and_labels_each_row():
    rng = np.random.default_rng(0)

    def img(h, w):
        return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)

    rows = [{"task": "t2i.x", "instruction": "A cat.", "inputs": [], "generated": img(24, 32), "target": img(24, 32),
             "outputs": 1},
            {"task": "ref.y", "instruction": "Join <image 1> and <image 2>.", "inputs": [img(16, 16), img(32, 16)],
             "generated": img(16, 16), "target": img(16, 16), "outputs": 2}]
    image = decode(grid_png(rows, tile_px=64))
    assert image.shape[1] == 4 * 64 + 3 * 6  # input 1 | input 2 | generated | target, the empty cells kept
    blue, green, grey = (_frame_lines(image, c) for c in (GENERATED, TARGET, INPUT))
    assert len(blue) == len(green) == 2 * 4 and len({(a, b) for _, a, b in blue}) == 1
    assert {(a, b) for _, a, b in grey} == {(0, 133)}  # the two inputs of the second row: columns 1-2
    assert {(a, b) for _, a, b in blue} == {(140, 203)}
    dark = (image.min(axis=-1) < 80).sum(axis=1)
    header, first_caption = dark[:22], dark[22 + 4 + 64: 22 + 4 + 64 + 16]  # titles band, then the row's caption
    assert header.sum() > 50 and first_caption.sum() > 50


def test_truncated_instructions_get_a_warning_line():
    node = {"text": {"texts": 40, "longest": 107, "max_tokens": 77, "truncated": 3, "truncated_rows": 9,
                     "examples": ["Four panels: first a cat, then a dog, then"], "prefix_outputs": False}}
    text = "\n".join(text_section(node))
    assert "**Warning: 3 truncated instruction(s)** (9 rows) are longer than 77 tokens and were cut" in text
    ok = "\n".join(text_section({"text": node["text"] | {"truncated": 0, "truncated_rows": 0}}))
    assert "Truncated instructions: 0" in ok and "Warning" not in ok


def test_tasks_indexed_but_never_drawn_are_listed_too():
    node = {"stages": [{"index": {"tasks": {"edit.add": 5, "drag.rotate": 3}}}]}
    history = [{"step": s, "loss": 1.0, "tasks": {"edit.add": 1.0 - s / 10}, "task_samples": {"edit.add": 2}}
               for s in range(3)]
    rows = {r["task"]: r for r in task_rows(node, history)}
    assert rows["drag.rotate"]["steps"] == 0 and rows["drag.rotate"]["samples"] == 0 and rows["drag.rotate"]["last"] is None
    assert rows["edit.add"]["samples"] == 6 and rows["edit.add"]["last"] == pytest.approx(0.8)


def test_the_card_wraps_its_long_lines_and_shows_the_lineage_picture(card, reference, setup):  # noqa: F811
    checkpoint = job.list_checkpoints(reference["run_dir"])[-1]
    code = _section(card, "Use it").split("```")[1]
    assert max(len(line) for line in code.splitlines()) <= 68  # fits the UI's card column, no scrolling
    joined = code.replace("'\\\n'", "")  # the shell glues a path split over lines into one word
    assert f"\n    --checkpoint '{checkpoint}' \\\n" in joined and "\n    --out samples/\n" in joined
    assert f"\nunimontage card \\\n    '{setup['ref']}'\n" in joined
    # outside code blocks nothing is long and unbreakable (paths break at every '/')
    prose = re.sub(r"```.*?```", "", card, flags=re.S)
    prose = re.sub(r"\(data:image/png;base64,[^)]+\)", "", prose)
    longest = max(re.split(r"\s|<wbr>", prose), key=len)
    assert len(longest) < 50, longest
    picture = _images(card)["lineage"]
    assert np.all(picture[..., :3] == (255, 201, 40), axis=-1).sum() > 200  # the highlight around the latest checkpoint
    assert [alt for alt in _images(card)] == ["task shares", "loss", "loss per task family", "generations", "lineage"]
