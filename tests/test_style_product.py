"""The style product: built-in looks (targets exact by construction), the leakage check, the stand-in
generator backends (an HTTP endpoint the test serves, a tiny random-weight diffusers pipeline),
and a run through Ray -> Lance with its card."""

from __future__ import annotations

import lance
import numpy as np
import pytest

from compute import harness
from datagen import products
from datagen.product import Item
from datagen.rng import sample_rng
from datagen.schema import Picture, Reject, Sample, from_row, to_row, validate
from datagen.scoring.leakage import StyleLeakageScorer
from datagen.style import looks
from datagen.style.product import StyleConfig, StyleItems, plan
from tests import generator_stand_in


def run(cfg: StyleConfig, n: int | None = None, seed: int = 0) -> list[Sample | Reject]:
    p = plan(cfg)
    items = StyleItems(cfg, p.context)
    out = []
    for it in list(p.items)[: n or cfg.num]:
        out += items(it, sample_rng(seed, it.index))
    return out


@pytest.fixture(scope="module")
def classical():
    return run(StyleConfig(num=9, size=96))


def test_classical_targets_are_the_named_look_of_the_content(classical):
    samples = [s for s in classical if isinstance(s, Sample)]
    assert len(samples) == 9 and {s.task for s in samples} == {"style.transfer", "style.ref", "style.id"}
    for s in samples:
        validate(s)
        s = from_row(to_row(s))
        assert s.meta["look"] in looks.LOOKS and looks.words(s.meta["look"]) in s.instruction
        assert s.scorer.startswith("style_leakage@1") and s.scores["style_phash_distance"] >= 0.2
        roles = [p.role for p in s.inputs]
        assert roles == {"style.transfer": ["content", "style"], "style.ref": ["style"],
                         "style.id": ["identity", "style"]}[s.task]
        style_source = s.meta["style"].split("@", 1)[1]
        assert style_source != s.meta["content"]  # the style reference shows another photo
        if s.task == "style.transfer":
            # Exact: the target is the look applied to the stored content.
            assert np.array_equal(s.outputs[0].pixels, looks.render(s.meta["look"], s.inputs[0].pixels))
            assert s.scores["content_change"] >= 6 and s.scores["content_structure"] > s.scores["style_structure"]
        if s.task == "style.ref":
            assert s.meta["caption"][1:] in s.instruction and "<image 1>" in s.instruction
        if s.task == "style.id":
            face_in = [r for r in s.regions if r.side == "input"]
            face_out = [r for r in s.regions if r.side == "output"]
            assert len(face_in) == len(face_out) == 1 and s.meta["content"] == "skimage:astronaut"
            x0, y0, x1, y1 = face_in[0].box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and (x1 - x0) > 0.2  # a head-and-shoulders crop
            assert s.scores["identity_phash_distance"] >= 0.2


def test_same_rng_same_bytes(classical):
    again = run(StyleConfig(num=9, size=96))
    assert [to_row(a) for a in again] == [to_row(b) for b in classical]


def _pair(content, style, out, identity=None) -> Sample:
    inputs = ([Picture(identity, "identity")] if identity is not None else []) + \
        ([Picture(content, "content")] if content is not None else []) + [Picture(style, "style")]
    return Sample("style.transfer", "x <image 1>", inputs, [Picture(out, "target")], source_ids=["t"])


def test_leakage_scorer_names_each_copy(classical):
    s = next(x for x in classical if isinstance(x, Sample) and x.task == "style.transfer")
    content, style, good = s.inputs[0].pixels, s.inputs[1].pixels, s.outputs[0].pixels
    scorer = StyleLeakageScorer()
    results = scorer([_pair(content, style, good), _pair(content, style, style), _pair(content, style, content),
                      _pair(content, style, np.full_like(good, 128)), _pair(None, style, style)])
    assert isinstance(results[0], dict)
    assert [r.reason for r in results[1:]] == ["style_leak", "content_copy", "content_lost", "style_leak"]
    face = next(x for x in classical if isinstance(x, Sample) and x.task == "style.id")
    pasted = scorer([_pair(None, face.inputs[1].pixels, face.inputs[0].pixels, identity=face.inputs[0].pixels)])
    assert pasted[0].reason == "identity_copy"


def test_http_backend_and_leaks_become_rejects(tmp_path):
    with generator_stand_in.serve() as url:
        generator_stand_in.requests.clear()
        good = run(StyleConfig(num=3, size=64, generator=url + "/", tasks=("style.transfer",)))
        assert all(isinstance(s, Sample) for s in good), good
        path, body = generator_stand_in.requests[0]
        assert len(body["references"]) == 2 and body["width"] == body["height"] == 64
        assert good[0].meta["backend"].startswith("http@1+127.0.0.1") and good[0].meta["prompt"] == body["prompt"]
        assert good[0].meta["reference_mode"] == "http"
        # A model that answers its style reference: content leakage. One that answers the content: no style.
        leak = run(StyleConfig(num=2, size=64, generator=url + "/echo/1", tasks=("style.transfer",)))
        copy = run(StyleConfig(num=2, size=64, generator=url + "/echo/0", tasks=("style.transfer",)))
        fail = run(StyleConfig(num=1, size=64, generator=url + "/fail", tasks=("style.ref",)))
    assert {r.reason for r in leak} == {"style_leak"} and all(r.stage == "score" for r in leak)
    assert {r.reason for r in copy} == {"content_copy"}
    assert [r.reason for r in fail] == ["generator_http_error"] and fail[0].task == "style.ref"


def test_diffusers_stand_in(tmp_path):
    pytest.importorskip("diffusers")
    from datagen.testing.tiny_models import make_tiny_sd_pipeline

    from datagen.storyboard.generators import DiffusersGenerator

    folder = make_tiny_sd_pipeline(tmp_path / "tiny-sd")
    cfg = StyleConfig(num=2, size=32, generator=f"diffusers:{folder}", tasks=("style.ref", "style.transfer"))
    assert products.get("style").uses_actors(cfg)
    p = plan(cfg)
    items = StyleItems(cfg, p.context)
    assert isinstance(items.maker.backend, DiffusersGenerator)
    items.maker.backend.steps = 2  # the plumbing, not the picture: 2 denoising steps instead of 25
    made = [x for it in p.items for x in items(it, sample_rng(0, it.index))]
    ref = next(x for x in made if x.task == "style.ref")
    assert isinstance(ref, Sample) and ref.meta["backend"] == "diffusers@1+tiny-sd+tiny-random"
    assert ref.meta["reference_mode"] == "none" and ref.outputs[0].pixels.shape == (32, 32, 3)
    transfer = next(x for x in made if x.task == "style.transfer")
    # A text-only pipeline never saw the content: the leakage check says so instead of keeping noise.
    assert isinstance(transfer, Reject) and transfer.reason in {"content_lost", "style_leak"}


def test_config_errors():
    with pytest.raises(ValueError, match="unknown style task"):
        StyleConfig(num=1, tasks=("style.nope",))
    with pytest.raises(ValueError, match="--styles needs a diffusers or http"):
        StyleConfig(num=1, styles="/tmp")
    with pytest.raises(ValueError, match="use diffusers:"):
        StyleConfig(num=1, generator="ftp://x")


def test_folder_pools_and_a_broken_file_is_a_reject(tmp_path):
    import skimage.data as skd
    from PIL import Image

    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(skd, name)()).save(tmp_path / f"{name}.png")
    (tmp_path / "coffee.txt").write_text("a small cup of coffee")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    cfg = StyleConfig(num=12, size=64, contents=str(tmp_path), tasks=("style.ref",))
    p = plan(cfg)
    assert [c.name for c in p.context.contents] == ["astronaut.png", "broken.png", "coffee.png"]
    assert p.sources[0]["content_hash"] and p.content["contents"] == p.sources[0]["content_hash"]
    made = run(cfg)
    assert len(made) == 12
    rejects = [r for r in made if isinstance(r, Reject)]
    assert rejects and {r.reason for r in rejects} == {"corrupt_image"} and "broken.png" in rejects[0].detail
    assert any(isinstance(s, Sample) and "a small cup of coffee" in s.instruction for s in made)


def test_style_run_through_ray_and_lance(ray_local, tmp_path):
    from flows import card

    res = harness.execute(harness.plan_run("style", out=str(tmp_path / "style.lance"), num=6, size=64),
                          workers=1, progress=False)
    assert res.rows + res.rejects == 6 and res.rows >= 5
    rows = lance.dataset(res.uri).to_table().to_pylist()
    assert {r["task"] for r in rows} == {"style.transfer", "style.ref", "style.id"}
    md = card.render_card(res.uri)
    assert "style_phash_distance" in md and "`style.transfer`" in md
