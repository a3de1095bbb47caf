"""Symlinks in input folders: an entry that resolves outside the folder it is listed from is
refused with a reason (a pre-reject or a reject row), never read - for every product that
lists a folder of inputs (videos, images, captures, asset packs, photos to cut out)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from datagen import products
from datagen.collage.assets import AssetsUnavailable, load_folder
from datagen.conditions.image_folder import list_images
from datagen.folder_listing import BROKEN, OUTSIDE, list_folder, outside
from datagen.multiview.product import find_captures
from datagen.video.sources import list_videos, plan_videos
from tests import videos

SECRET = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """Files outside every input folder: what a hostile link points at."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "credentials").write_text(SECRET)
    Image.fromarray(np.full((96, 96, 3), 200, np.uint8)).save(d / "private.png")
    (d / "folder").mkdir()
    Image.fromarray(np.full((96, 96, 3), 90, np.uint8)).save(d / "folder" / "more.png")
    return d


def _link(path: Path, target: Path | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def test_the_listing_rules(tmp_path: Path, elsewhere: Path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"a")
    (root / ".hidden.png").write_bytes(b"h")
    _link(root / "sub" / "same.png", "a.png")  # inside: kept
    _link(root / "out.png", elsewhere / "private.png")
    _link(root / "up.png", "../elsewhere/private.png")
    _link(root / "gone.png", root / "nothing.png")
    _link(root / "dir_out", elsewhere / "folder")
    _link(root / "loop", ".")  # inside, never descended: no duplicates, no endless walk
    found = list_folder(root)
    assert found.files == [".hidden.png", "sub/a.png", "sub/same.png"]
    assert [(r.rel, r.reason) for r in found.refused] == [
        ("dir_out", OUTSIDE), ("gone.png", BROKEN), ("out.png", OUTSIDE), ("up.png", OUTSIDE)]
    assert list_folder(root, skip_hidden=True, keep=lambda rel: rel.startswith("sub")).files == ["sub/a.png",
                                                                                                  "sub/same.png"]
    assert list_folder(root, recursive=False).files == [".hidden.png"]
    # A sub-folder listed against its parent may itself be the way out.
    assert [r.reason for r in list_folder(root / "dir_out", within=root).refused] == [OUTSIDE]
    assert outside(root / "sub" / "same.png", root) is None and outside(root / "out.png", root).reason == OUTSIDE
    # The folder given may itself be a link: its real place is the boundary.
    alias = _link(tmp_path / "alias", root)
    assert list_folder(alias).files == found.files


def test_videos_linked_from_outside_are_pre_rejects(tmp_path: Path, elsewhere: Path):
    clips = tmp_path / "clips"
    clips.mkdir()
    videos.one_frame(clips / "real.mp4")
    videos.one_frame(elsewhere / "theirs.mp4")
    _link(clips / "theirs.mp4", elsewhere / "theirs.mp4")
    _link(clips / "creds.mp4", elsewhere / "credentials")
    _link(clips / "gone.mp4", clips / "missing.mp4")
    assert [v.video_id for v in list_videos(str(clips))] == ["real.mp4"]
    for name, task in (("video-pairs", "video.pair"), ("storyboard", "storyboard")):
        plan = products.get(name).plan(products.get(name).make_config({"videos": str(clips)}))
        assert [it.data["video_id"] for it in plan.items] == ["real.mp4"]
        assert [(Path(r.source).name, r.reason, r.task) for r in plan.pre_rejects] == [
            ("creds.mp4", OUTSIDE, task), ("gone.mp4", BROKEN, task), ("theirs.mp4", OUTSIDE, task)]
        assert all(r.stage == "plan" and r.detail for r in plan.pre_rejects)
    only_links = tmp_path / "only_links"
    _link(only_links / "x.mp4", elsewhere / "theirs.mp4")
    with pytest.raises(ValueError, match="no video files.*1 refused"):
        plan_videos(str(only_links), "video.pair")
    with pytest.raises(ValueError) as err:
        list_videos("s3://AKIAEXAMPLE:hunter2@bucket/clips")
    assert "hunter2" not in str(err.value) and "s3://bucket/clips" in str(err.value)


def test_images_and_captions_linked_from_outside_are_refused(tmp_path: Path, elsewhere: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((96, 96, 3), 10, np.uint8)).save(photos / "mine.png")
    (photos / "mine.txt").write_text("A dark square.")
    Image.fromarray(np.full((96, 96, 3), 50, np.uint8)).save(photos / "leaky.png")
    _link(photos / "leaky.txt", elsewhere / "credentials")  # the caption would carry the secret into samples
    _link(photos / "private.png", elsewhere / "private.png")
    folder = list_images(str(photos))
    assert [(f.name, f.caption) for f in folder.files] == [("mine.png", "A dark square.")]
    assert [(r.rel, r.reason) for r in folder.refused] == [("leaky.png", OUTSIDE), ("private.png", OUTSIDE)]
    assert "caption" in folder.refused[0].detail
    plan = products.get("conditions").plan(products.get("conditions").make_config({"images": str(photos)}))
    assert len(plan.items) == 1 and [Path(r.source).name for r in plan.pre_rejects] == ["leaky.png", "private.png"]
    assert SECRET not in repr(plan.items) + repr(plan.pre_rejects) + repr(plan.sources)


def test_captures_with_a_link_outside_are_refused(tmp_path: Path, elsewhere: Path):
    root = tmp_path / "captures"
    for cap in ("cat/good", "cat/leaky"):
        (root / cap / "images").mkdir(parents=True)
        (root / cap / "sparse" / "0").mkdir(parents=True)
        cv2.imwrite(str(root / cap / "images" / "000.jpg"), np.zeros((32, 32, 3), np.uint8))
    _link(root / "cat" / "leaky" / "images" / "001.jpg", elsewhere / "private.png")
    _link(root / "cat" / "theirs", elsewhere / "folder")  # a whole folder from outside: may hide a capture
    roots, rejects = find_captures(root)
    assert roots == [root / "cat" / "good"]
    assert [(Path(r.source).name, r.reason, r.task) for r in rejects] == [("leaky", OUTSIDE, "multiview"),
                                                                          ("theirs", OUTSIDE, "multiview")]
    assert "001.jpg" in rejects[0].detail


def test_asset_folders_refuse_links_outside(tmp_path: Path, elsewhere: Path):
    pack = tmp_path / "pack"
    (pack / "backgrounds").mkdir(parents=True)
    (pack / "cutouts").mkdir()
    Image.fromarray(np.full((96, 96, 3), 120, np.uint8)).save(pack / "backgrounds" / "grey.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48] = (200, 30, 30, 255)
    Image.fromarray(rgba).save(pack / "cutouts" / "red_box.png")
    _link(pack / "backgrounds" / "private.png", elsewhere / "private.png")
    loaded, rejects = load_folder(pack)
    assert [a.name for a in loaded.backgrounds] == ["grey"] and [a.name for a in loaded.cutouts] == ["red box"]
    assert [(Path(r.source).name, r.reason) for r in rejects] == [("private.png", OUTSIDE)]
    _link(pack / "names.json", elsewhere / "credentials")
    with pytest.raises(AssetsUnavailable) as err:
        load_folder(pack)
    assert OUTSIDE not in str(err.value) and "outside" in str(err.value) and SECRET not in str(err.value)


def test_photos_to_cut_out_refuse_links_outside(tmp_path: Path, elsewhere: Path):
    from datagen.collage.rembg_cutouts import cutouts_from_folder
    from tests.test_collage_rembg import _red_disc, _tiny_u2net

    model = _tiny_u2net(tmp_path / "models" / "u2net.onnx")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_red_disc()).save(photos / "red_ball.png")
    _link(photos / "private.png", elsewhere / "private.png")
    assets, rejects = cutouts_from_folder(photos, model.parent)
    assert [a.name for a in assets] == ["red ball"]
    assert [(Path(r.source).name, r.reason) for r in rejects] == [("private.png", OUTSIDE)]
