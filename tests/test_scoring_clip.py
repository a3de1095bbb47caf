"""CLIP scorer through open_clip with a tiny random-weight model in open_clip's local-dir layout."""

import json

import numpy as np
import pytest
import skimage.data

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from datagen.schema import Picture, Sample  # noqa: E402
from datagen.scoring import CLIPScorer, apply_scorer  # noqa: E402
from datagen.testing.tiny_models import make_tiny_open_clip  # noqa: E402
from datagen.weights import MissingWeights  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_open_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def story(ref, panels, captions=None):
    meta = {"captions": captions} if captions else {}
    return Sample("storyboard", "Create a story with <image 1>.", [Picture(ref, "reference")], [Picture(p, "target") for p in panels], meta=meta, source_ids=["s"])


def test_scores_are_the_cosines_of_open_clip_embeddings(clip_dir):
    a, c, h = skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()
    scorer = CLIPScorer(clip_dir, batch_size=2)
    assert scorer.tag == "clip@1+tiny-random"
    s = story(a, [c, h], captions=["a cup of coffee", "a cat"])
    kept, rejects = apply_scorer(scorer, [s, story(a, [a])])
    assert not rejects
    # Recompute with open_clip directly, from the same folder.
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{clip_dir}")
    tok = open_clip.get_tokenizer(f"local-dir:{clip_dir}")
    from PIL import Image

    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.fromarray(x)) for x in (a, c, h)]))
        txt = model.encode_text(tok(["a cup of coffee", "a cat"]))
    img = torch.nn.functional.normalize(img, dim=-1).numpy()
    txt = torch.nn.functional.normalize(txt, dim=-1).numpy()
    sc = kept[0].scores
    assert sc["clip_image"] == pytest.approx(np.mean([img[0] @ img[1], img[0] @ img[2]]), abs=1e-5)
    assert sc["clip_image_min"] == pytest.approx(min(img[0] @ img[1], img[0] @ img[2]), abs=1e-5)
    assert sc["clip_text"] == pytest.approx(np.mean([img[1] @ txt[0], img[2] @ txt[1]]), abs=1e-5)
    # The same picture as reference and panel: cosine 1.
    assert kept[1].scores["clip_image"] == pytest.approx(1.0, abs=1e-5)


def test_batching_does_not_change_scores(clip_dir):
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    samples = [story(photos[i], [photos[(i + 1) % 4], photos[(i + 2) % 4]]) for i in range(4)]
    together = CLIPScorer(clip_dir, batch_size=8)(samples)
    one_by_one = [CLIPScorer(clip_dir, batch_size=1)([s])[0] for s in samples]
    for t, o in zip(together, one_by_one):
        for k in t:
            assert t[k] == pytest.approx(o[k], abs=1e-5)


def test_missing_checkpoint_or_config_is_a_clear_error(clip_dir, tmp_path):
    empty = tmp_path / "half"
    empty.mkdir()
    (empty / "open_clip_config.json").write_text((clip_dir / "open_clip_config.json").read_text())
    # open_clip alone would warn and carry on with random weights; we refuse.
    with pytest.raises(MissingWeights) as err:
        CLIPScorer(empty).setup()
    assert "open_clip_model.safetensors" in str(err.value) and str(empty) in str(err.value)
    with pytest.raises(MissingWeights, match="open_clip_config.json"):
        CLIPScorer(tmp_path).setup()
    with pytest.raises(MissingWeights, match="model_name"):
        CLIPScorer(clip_dir / "open_clip_model.safetensors").setup()
    assert json.loads((clip_dir / "open_clip_config.json").read_text())["model_cfg"]["embed_dim"] == 16
