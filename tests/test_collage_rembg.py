"""rembg-style cutouts: a tiny u2net-shaped ONNX model built here proves the plumbing end to end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from datagen.collage import AssetPack, CollageSpec, check, generate, starter_pack
from datagen.collage.rembg_cutouts import cutouts_from_folder, load_model
from datagen.rng import sample_rng
from datagen.schema import Sample
from datagen.weights import MissingWeights


def _tiny_u2net(path: Path, side: int = 320) -> Path:
    """1x3xSxS -> 1x1xSxS: sigmoid(2R - G - B) of the normalised input, i.e. "how red"."""
    weight = numpy_helper.from_array(np.array([2.0, -1.0, -1.0], np.float32).reshape(1, 3, 1, 1), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input.1", "w"], ["logits"]), helper.make_node("Sigmoid", ["logits"], ["d0"])],
        "tiny_u2net",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, side, side])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    _tiny_u2net(tmp_path / "models" / "u2net.onnx")
    return tmp_path / "models"


def _red_disc() -> np.ndarray:
    img = np.full((240, 300, 3), 255, np.uint8)
    cv2.circle(img, (180, 110), 50, (220, 30, 30), -1, lineType=cv2.LINE_AA)
    return img


def test_model_runs_and_cuts_the_object(model_dir: Path):
    model = load_model(model_dir)
    assert model.path.name == "u2net.onnx"
    alpha = model.alpha(_red_disc())
    assert alpha.shape == (240, 300) and alpha.dtype == np.uint8
    ys, xs = np.nonzero(alpha > 127)
    # The disc spans x 130..230, y 60..160; LANCZOS from 320x320 back costs a pixel or two.
    assert abs(xs.min() - 130) <= 3 and abs(xs.max() - 230) <= 3 and abs(ys.min() - 60) <= 3 and abs(ys.max() - 160) <= 3
    assert alpha[110, 180] > 240 and alpha[5, 5] < 10


def test_folder_of_photos(model_dir: Path, tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_red_disc()).save(photos / "red_ball.png")
    Image.fromarray(np.full((200, 200, 3), 240, np.uint8)).save(photos / "blank_wall.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    assets, rejects = cutouts_from_folder(photos, model_dir, label="shoot")
    assert [a.name for a in assets] == ["red ball"] and assets[0].asset_id == "shoot:rembg/red_ball.png"
    assert assets[0].pixels.shape[2] == 4 and 95 <= assets[0].pixels.shape[1] <= 110
    assert sorted((Path(r.source).name, r.reason) for r in rejects) == [
        ("blank_wall.png", "rembg_empty"), ("broken.jpg", "corrupt_image")]
    # The new cutout is usable straight away.
    pack = AssetPack("mixed", starter_pack().backgrounds[:3], tuple(assets) + starter_pack().cutouts[:1])
    s = generate(CollageSpec(task="edit.replace", size=128, assets=pack), sample_rng(1, 0))
    assert isinstance(s, Sample) and check(s) is None and "shoot:rembg/red_ball.png" in s.source_ids


def test_missing_or_wrong_model(tmp_path: Path):
    with pytest.raises(MissingWeights) as err:
        load_model(tmp_path)
    assert "u2net.onnx" in str(err.value) and str(tmp_path) in str(err.value) and err.value.folder == tmp_path
    with pytest.raises(FileNotFoundError, match=r"u2netp\.onnx not found in .*nowhere"):
        load_model(tmp_path / "nowhere" / "u2netp.onnx")
    odd = _tiny_u2net(tmp_path / "odd" / "u2net.onnx", side=256)
    with pytest.raises(ValueError, match="1x3x320x320"):
        load_model(odd)


def test_collage_product_cuts_photos_out_into_its_pack(model_dir: Path, tmp_path: Path):
    """`--photos DIR --rembg MODEL` reaches cutouts_from_folder through the product's plan."""
    from compute import harness

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_red_disc()).save(photos / "red_ball.png")
    Image.fromarray(np.full((200, 200, 3), 240, np.uint8)).save(photos / "blank_wall.png")
    spec = harness.plan_run("collage", out=str(tmp_path / "c.lance"), num=2, tasks=["edit.add"], size=96,
                            photos=str(photos), rembg=str(model_dir))
    assert any(a.asset_id.endswith("rembg/red_ball.png") for a in spec.plan.context.cutouts)
    assert [(Path(r.source).name, r.reason) for r in spec.plan.pre_rejects] == [("blank_wall.png", "rembg_empty")]
    with pytest.raises(ValueError, match="--photos needs --rembg"):
        harness.plan_run("collage", out=str(tmp_path / "d.lance"), num=2, photos=str(photos))
