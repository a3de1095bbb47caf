"""The same inputs give the same bytes wherever they sit: no sample may carry an absolute path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import skimage.data as skd
from PIL import Image

from compute import harness


def _two_places(src, tmp_path):
    a, b = tmp_path / "site-a" / "in", tmp_path / "elsewhere" / "deeper" / "in"
    shutil.copytree(src, a)
    shutil.copytree(src, b)
    return a, b


@pytest.mark.slow  # make test-slow (conditions below keeps the check in make test)
def test_video_pairs_and_storyboards_do_not_depend_on_the_folder(ray_local, tmp_path):
    from datagen.storyboard.demo_video import make_storyboard_clip
    from datagen.video import make_demo_clips

    make_demo_clips(tmp_path / "clips", seed=0)
    make_storyboard_clip(tmp_path / "clips", seed=0)
    hashes = {"pairs": set(), "story": set()}
    for k, folder in enumerate(_two_places(tmp_path / "clips", tmp_path)):
        pairs = harness.execute(harness.plan_run("video-pairs", out=str(tmp_path / f"pairs{k}.lance"),
                                                 videos=str(folder)), workers=1, progress=False)
        story = harness.execute(harness.plan_run("storyboard", out=str(tmp_path / f"story{k}.lance"),
                                                 videos=str(folder)), workers=1, progress=False)
        assert pairs.rows > 0 and story.rows > 0
        hashes["pairs"].add(pairs.content_hash)
        hashes["story"].add(story.content_hash)
    assert len(hashes["pairs"]) == 1 and len(hashes["story"]) == 1


def test_conditions_do_not_depend_on_the_folder(ray_local, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(np.asarray(getattr(skd, name)())).resize((128, 96)).save(src / f"{name}.png")
    results = [harness.execute(harness.plan_run("conditions", out=str(tmp_path / f"c{k}.lance"), images=str(folder),
                                                kinds="canny"), workers=1, progress=False)
               for k, folder in enumerate(_two_places(src, tmp_path))]
    assert results[0].rows == 3 and results[0].content_hash == results[1].content_hash
