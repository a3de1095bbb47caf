"""Lance -> row index -> Ray Data decode at native sizes -> batches, on real Lance datasets and
local Ray: sizes and tokens, the outpaint geometry, routing pairs from `regions`, text from the
cache, rows that fail to decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datagen import schema
from datagen.images import decode
from datagen.rng import sample_rng
from datagen.schema import Picture, Sample
from datagen.store import lance_io
from models.image_space import PixelSpace
from models.packing import patchify
from tests.test_training_support import TEXT_DIM, make_photo_dataset, make_text_encoder
from training.batches import to_edit_batch
from training.config import TrainConfig
from training.data import step_batches
from training.index import Geometry, build_index, pin, read_shapes
from training.mixing import RunPlan, StepPlan
from training.regions import parse_pairs, route_pairs
from training.sizes import fit_image, fit_size, grid_coverage, resize
from training.stages import Stage

GEO = Geometry(multiple=4, token_px=4, max_inputs=4, max_outputs=4)


def write(uri: str, samples: list[Sample], corrupt: set[int] = frozenset()) -> str:
    rows = []
    for i, s in enumerate(samples):
        s.sample_id, s.index = schema.make_id(uri, i), i
        row = schema.to_row(s)
        if i in corrupt:
            row["inputs"][0]["data"] = b"\x89PNG\r\n\x1a\n but then nothing"
        rows.append(row)
    table = schema.pa.Table.from_pylist(rows, schema=schema.SAMPLE_SCHEMA)
    frags = lance_io.write_uncommitted(table, uri, schema.SAMPLE_SCHEMA)
    ds = lance_io.commit(uri, schema.SAMPLE_SCHEMA, frags, {"kind": "dataset", "rows": len(rows)})
    return f"{ds.uri}@{ds.version}"


def index_of(refs: list[str], **cfg) -> tuple:
    stage_cfg = TrainConfig(**cfg)
    index = build_index(refs, stage_cfg, GEO, {r: read_shapes(r) for r in refs})
    return index, stage_cfg


def one_stage_run(index, cfg: TrainConfig, steps: int = 100) -> RunPlan:
    return RunPlan([StepPlan(index, Stage(0, "main", 0, steps, cfg.replace(max_steps=steps)), cfg.seed)])


@pytest.fixture(scope="module")
def datasets(ray_local, tmp_path_factory):
    from datagen.collage import CollageSpec, generate

    root = tmp_path_factory.mktemp("data")
    photos = make_photo_dataset(root / "photos.lance", num=16)
    rng = np.random.default_rng(0)

    def pic(h=40, w=40):
        return Picture(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "source")

    bad = [Sample("edit.add", f"edit {i} <image 1>", [pic()], [pic()]) for i in range(4)]
    bad.append(Sample("edit.add", "never drawn", [pic()], [pic()], weight=0.0))
    bad.append(Sample("ref.subject", "too many", [pic() for _ in range(5)], [pic()]))
    bad.append(Sample("t2i.huge", "too many tokens", [], [pic(400, 400)] * 4))
    outpaint = generate(CollageSpec(task="outpaint", size=64), sample_rng(5, 0))
    subject = generate(CollageSpec(task="ref.subject", size=64), sample_rng(5, 1))
    return {"photos": photos, "bad": write(str(root / "bad.lance"), bad, corrupt={2}), "root": root,
            "collage": write(str(root / "collage.lance"), [outpaint, subject]), "outpaint": outpaint,
            "subject": subject}


def test_every_image_keeps_its_aspect_ratio_within_the_pixel_budget():
    assert fit_size(64, 64, 32, 4) == (32, 32)
    assert fit_size(38, 64, 32, 4) == (24, 40)  # an outpaint crop: 60% of the height, aspect kept
    assert fit_size(1080, 1920, 32, 4) == (24, 40)  # 16:9 stays wide
    assert fit_size(40, 60, 32, 4) == (24, 36)  # 3:2 exactly
    assert fit_size(20, 12, 32, 4) == (20, 12)  # small images are not enlarged
    assert fit_size(2, 3, 32, 4) == (4, 4)  # at least one patch
    for h, w in [(300, 451), (480, 640), (31, 1000), (1000, 31)]:
        fh, fw = fit_size(h, w, 32, 4)
        assert fh % 4 == fw % 4 == 0 and fh * fw <= 1024
        assert abs(np.log((fw / fh) / (w / h))) < 0.1 or min(fh, fw) == 4
    yy, xx = np.mgrid[:60, :120]
    disk = ((yy - 30) ** 2 + (xx - 60) ** 2 <= 20**2).astype(np.uint8) * 255
    out = fit_image(disk, 32, 4, role="mask")
    assert out.shape == (20, 40, 3) and set(np.unique(out).tolist()) <= {0, 255}  # labels are not blended
    assert (fit_image(np.zeros((20, 20, 4), np.uint8), 8, 4) == 255).all()  # transparent -> white
    cov = grid_coverage(np.pad(np.ones((4, 4), bool), ((0, 4), (0, 4))), (2, 2))
    assert cov.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_index_counts_tokens_and_every_row_left_out(datasets):
    refs = pin([datasets["photos"].split("@")[0], datasets["bad"]])
    assert refs[0] == datasets["photos"]  # the latest version is pinned
    index, _ = index_of(refs, batch_tokens=200)  # the 4-output sample needs 256 tokens
    assert index.skipped == {"zero_weight": 1, "too_many_inputs": 1, "too_many_tokens": 1}
    assert index.rows_per_dataset == {refs[0]: 16, refs[1]: 4}
    assert index.tasks == ["edit.add", "edit.remove", "t2i.photo", "video.pair"]
    for d, ref in enumerate(refs):
        mine = np.flatnonzero(index.dataset == d)
        stored = lance_io.open_dataset(ref).take(index.position[mine].tolist(), columns=["task"]).column("task")
        assert stored.to_pylist() == [index.tasks[t] for t in index.task[mine]]
    t = {name: i for i, name in enumerate(index.tasks)}
    tokens = lambda task: set((index.tokens_in + index.tokens_out)[index.task == t[task]].tolist())  # noqa: E731
    assert tokens("t2i.photo") == {7 * 9}  # 48x64 -> 28x36 -> 7x9 patches, no input
    assert tokens("video.pair") == {2 * 6 * 9}  # 40x60 -> 24x36, input and output
    assert index.summary()["groups"] == {"0in-1out": 4, "1in-1out": 16}
    with pytest.raises(FileNotFoundError, match="no version 9"):
        pin([datasets["photos"].split("@")[0] + "@9"])
    with pytest.raises(FileNotFoundError, match="no Lance dataset"):
        pin([str(datasets["root"] / "missing.lance")])


def test_an_outpaint_input_reaches_the_model_with_its_geometry(datasets, tmp_path):
    """The kept part of the canvas arrives whole, at its own aspect ratio (only resampled), and
    its tokens sit on the output's grid rows it came from."""
    sample = datasets["outpaint"]
    x0, y0, x1, y1 = sample.meta["crop_px"]
    crop = sample.inputs[0].pixels
    assert crop.shape[:2] == (y1 - y0, x1 - x0) != sample.outputs[0].pixels.shape[:2]
    refs = pin([datasets["collage"]])
    index, cfg = index_of(refs, batch_size=2, resolution=32)
    batch = next(step_batches(one_stage_run(index, cfg), 0, 1, 0, 1, geometry={"multiple": 4, "token_px": 4},
                              routing_pairs=["subject"], text_dim=TEXT_DIM))
    k = batch.instructions.index(sample.instruction)
    got = batch.inputs[k][0]
    want = resize(crop, fit_size(*crop.shape[:2], 32, 4))
    assert np.array_equal(got, want)  # the whole crop, resampled, nothing cut away
    assert abs(np.log((got.shape[1] / got.shape[0]) / (crop.shape[1] / crop.shape[0]))) < 0.12
    assert batch.outputs[k][0].shape == (32, 32, 3)
    edit = to_edit_batch(batch, index, PixelSpace(), torch.device("cpu"), "sample", patch=4, max_inputs=4,
                         layout="marginal", gap=16)
    n = (got.shape[0] // 4) * (got.shape[1] // 4)
    torch.testing.assert_close(edit.batch.inputs.tokens[k, :n], patchify(PixelSpace().encode(got), 4))
    ids = edit.batch.inputs.ids[k, :n]
    assert ids[:, 1].max() == got.shape[0] // 4 - 1 and ids[:, 2].max() == got.shape[1] // 4 - 1  # its own grid


def test_routing_pairs_come_from_the_regions_on_both_sides(datasets):
    sample = datasets["subject"]
    n = len(sample.inputs)
    regions = schema.to_row(sample)["regions"]
    pairs = route_pairs(regions, parse_pairs(["subject"]), [(8, 8)] * n, [(8, 8)])
    assert [(p["in_image"], p["out_image"]) for p in pairs] == [(i, 0) for i in range(n)]
    for i, p in enumerate(pairs):
        out_mask = next(r.mask for r in sample.regions if r.name == f"subject:{i}" and r.side == "output")
        np.testing.assert_allclose(p["target"], grid_coverage(out_mask, (8, 8)), atol=1e-6)
        assert p["query"].max() > 0.9 and p["query"].min() == 0  # the subject on its neutral canvas
    assert route_pairs(regions, parse_pairs(["object"]), [(8, 8)] * n, [(8, 8)]) == []
    renamed = [dict(r, name="replaced") if r["side"] == "input" else dict(r, name="replacement") for r in regions[:2]]
    assert len(route_pairs(renamed, parse_pairs(["replaced>replacement"]), [(8, 8)] * n, [(8, 8)])) == 1
    boxed = [dict(r, mask=None) for r in regions]  # box-only regions are rasterised
    assert route_pairs(boxed, parse_pairs(["subject"]), [(8, 8)] * n, [(8, 8)])[0]["target"].sum() > 0


def test_step_batches_decode_exactly_the_planned_rows_with_their_text(datasets, tmp_path):
    from models.text_encoder import TextEncoder
    from training import text_cache

    refs = pin([datasets["photos"]])
    shapes = {refs[0]: read_shapes(refs[0])}
    encoder = TextEncoder(make_text_encoder(tmp_path / "te"))
    texts = [text_cache.final_text(t, 1, False) for t in shapes[refs[0]].column("instruction").to_pylist()]
    cache_ref, rows, _ = text_cache.build(str(tmp_path / "cache.lance"), texts, encoder)
    cfg = TrainConfig(batch_size=4, seed=5)
    index = build_index(refs, cfg, GEO, shapes, {refs[0]: (cache_ref, rows)})
    run = one_stage_run(index, cfg)
    ds = lance_io.open_dataset(refs[0])
    batches = list(step_batches(run, 1, 2, 3, 7, geometry={"multiple": 4, "token_px": 4}, routing_pairs=[],
                                text_dim=TEXT_DIM, data_tasks=2, prefetch_steps=2))
    assert [b.step for b in batches] == [3, 4, 5, 6]
    for b in batches:
        planned = run.rank_rows(b.step, 1, 2)
        assert b.rows.tolist() == planned.rows.tolist() and b.global_batch == 4 and b.ok.all() and not b.errors
        stored = ds.take(index.position[b.rows].tolist(), columns=["sample_id", "instruction", "outputs"]).to_pylist()
        assert b.sample_ids == [r["sample_id"] for r in stored]
        assert b.instructions == [r["instruction"] for r in stored]
        want = fit_image(decode(stored[0]["outputs"][0]["data"]), 32, 4)
        assert np.array_equal(b.outputs[0][0], want)
        live = encoder.embed([stored[0]["instruction"]])[0]
        np.testing.assert_allclose(b.text_tokens[0], live[0].numpy(), atol=1e-5)  # cached = encoded now


def test_a_row_that_fails_to_decode_is_reported_and_weighs_nothing(datasets, tmp_path):
    refs = pin([datasets["bad"]])
    index, cfg = index_of(refs, batch_size=8, weight_mode="loss")
    assert index.skipped == {"too_many_inputs": 1} and len(index) == 6  # weight 0 kept: it scales the loss
    run = one_stage_run(index, cfg)
    batches = list(step_batches(run, 0, 1, 0, 2, geometry={"multiple": 4, "token_px": 4}, routing_pairs=[],
                                text_dim=TEXT_DIM))
    bad_id = schema.make_id(refs[0].split("@")[0], 2)
    flagged = [(b, k) for b in batches for k, sid in enumerate(b.sample_ids) if sid == bad_id]
    assert flagged, "the plan should draw the corrupt row in two steps of 8 from 6 rows"
    for b, k in flagged:
        assert not b.ok[k] and not b.inputs[k] and not b.outputs[k][0].any()
        assert any(e["sample_id"] == bad_id and e["reason"] == "decode_error" for e in b.errors)
    b = flagged[0][0]
    edit = to_edit_batch(b, index, PixelSpace(), torch.device("cpu"), "loss", patch=4, max_inputs=4,
                         layout="marginal", gap=16)
    expected = b.ok * index.weight[b.rows]  # failed rows and weight-0 rows weigh nothing
    assert edit.weight.tolist() == pytest.approx(expected.tolist())
    assert edit.text.tokens.shape[0] == 8 and not edit.text.mask.any()  # no text cache here: empty features
