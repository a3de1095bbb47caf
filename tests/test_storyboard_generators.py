"""Generator backends: a tiny random-weight diffusers pipeline from a local folder, and the HTTP
protocol against a small http.server started by the test."""

import base64
import json
import threading
from http.server import ThreadingHTTPServer

import numpy as np
import pytest
import skimage.data

from datagen.images import decode, encode_png
from datagen.rng import sample_rng
from datagen.schema import validate
from datagen.weights import MissingWeights
from datagen.storyboard import (
    DiffusersGenerator,
    GenerationFailed,
    HTTPGenerator,
    StoryboardConfig,
    storyboard_from_generator,
)
from tests.generator_stand_in import QuietHandler

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    from datagen.testing.tiny_models import make_tiny_sd_pipeline

    return make_tiny_sd_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")


def test_diffusers_generator_is_seeded_and_prompt_driven(sd_dir):
    gen = DiffusersGenerator(sd_dir, steps=2)
    assert gen.tag == "diffusers@1+tiny-sd+tiny-random"
    a = gen.generate("a red fox", seed=1, width=32, height=32, references=[])
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and gen.reference_mode == "none"
    assert np.array_equal(a, gen.generate("a red fox", seed=1, width=32, height=32, references=[]))
    assert not np.array_equal(a, gen.generate("a red fox", seed=2, width=32, height=32, references=[]))
    assert not np.array_equal(a, gen.generate("a blue whale", seed=1, width=32, height=32, references=[]))


def test_storyboard_from_the_diffusers_pipeline(sd_dir):
    gen = DiffusersGenerator(sd_dir, steps=2)
    config = StoryboardConfig(generator=f"diffusers:{sd_dir}", width=32, height=32, min_panels=2, max_panels=3)
    samples, rejects = storyboard_from_generator(config, sample_rng(4, 0), gen)
    assert rejects == []
    s = samples[0]
    validate(s)
    n = len(s.outputs)
    assert 2 <= n <= 3 and s.inputs[0].role == "reference" and s.meta["reference_origin"] == "generated"
    assert s.meta["generator_backend"] == gen.tag and s.meta["reference_mode"] == "none"
    plan = s.meta["plan"]
    for k, caption in enumerate(s.meta["captions"]):
        # A caption says what its panel was asked for: same action, setting and framing.
        assert f"Panel {k + 1}: {caption}" in s.instruction
        assert plan["actions"][k] in caption and plan["setting"] in caption and plan["shots"][k] in caption
        assert plan["character"] in s.meta["panel_prompts"][k] and plan["actions"][k] in s.meta["panel_prompts"][k]
    again, _ = storyboard_from_generator(config, sample_rng(4, 0), gen)
    assert all(np.array_equal(x.pixels, y.pixels) for x, y in zip(s.outputs, again[0].outputs))
    other, _ = storyboard_from_generator(config, sample_rng(4, 1), gen)
    assert other[0].meta["plan"] != plan


def test_missing_pipeline_files(tmp_path, sd_dir):
    with pytest.raises(MissingWeights, match="does not exist"):
        DiffusersGenerator(tmp_path / "nope").setup()
    (tmp_path / "half").mkdir()
    with pytest.raises(MissingWeights) as err:
        DiffusersGenerator(tmp_path / "half").setup()
    assert "model_index.json" in str(err.value) and str(tmp_path / "half") in str(err.value)


# --------------------------------------------------------------------------- HTTP
class Handler(QuietHandler):
    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.requests.append((self.path, body))
        # The picture depends on prompt and seed, as a real model's would.
        shade = (sum(map(ord, body["prompt"])) * 7 + body["seed"]) % 256
        png = encode_png(np.full((body["height"], body["width"], 3), shade, np.uint8))
        if self.path == "/fail":
            self._send(500, "text/plain", b"model crashed")
        elif self.path == "/junk":
            self._send(200, "image/png", b"definitely not a png")
        elif self.path == "/raw":
            self._send(200, "image/png", png)
        else:
            self._send(200, "application/json", json.dumps({"image": base64.b64encode(png).decode()}).encode())


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_protocol_both_answer_forms(server):
    ref = skimage.data.astronaut()[::8, ::8]
    Handler.requests.clear()
    for path in ("/json", "/raw"):
        img = HTTPGenerator(server + path).generate("a fox", seed=3, width=48, height=40, references=[ref])
        assert img.shape == (40, 48, 3) and img[0, 0, 0] == (sum(map(ord, "a fox")) * 7 + 3) % 256
    path, body = Handler.requests[0]
    assert (body["prompt"], body["seed"], body["width"], body["height"]) == ("a fox", 3, 48, 40)
    assert np.array_equal(decode(base64.b64decode(body["references"][0])), ref)


def test_http_failures_become_rejects(server):
    config = StoryboardConfig(generator=server + "/fail", width=32, height=32)
    refs = [skimage.data.astronaut()]
    for path, reason in (("/fail", "generator_http_error"), ("/junk", "corrupt_image")):
        samples, rejects = storyboard_from_generator(config, sample_rng(0, 0), HTTPGenerator(server + path), references=refs)
        assert samples == [] and [r.reason for r in rejects] == [reason] and "panel 1" in rejects[0].detail
    port = int(server.rsplit(":", 1)[1])
    closed = HTTPGenerator(f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/x", timeout_s=2)
    with pytest.raises(GenerationFailed) as err:
        closed.generate("x", seed=0, width=8, height=8, references=[])
    assert err.value.reason in {"generator_unreachable", "generator_http_error"}
    with pytest.raises(ValueError, match="http"):
        HTTPGenerator("ftp://example/x").setup()


def test_storyboard_over_http_with_given_references(server):
    refs = [skimage.data.astronaut()[::4, ::4]]
    Handler.requests.clear()
    samples, rejects = storyboard_from_generator(StoryboardConfig(generator=server + "/json", width=64, height=48), sample_rng(2, 5), HTTPGenerator(server + "/json"), references=refs)
    assert rejects == []
    s = samples[0]
    validate(s)
    assert np.array_equal(s.inputs[0].pixels, refs[0]) and s.meta["reference_origin"] == "given"
    assert [b["prompt"] for _, b in Handler.requests] == s.meta["panel_prompts"]
    assert [b["seed"] for _, b in Handler.requests] == s.meta["plan"]["seeds"][1:]
    assert all(o.pixels.shape == (48, 64, 3) for o in s.outputs)
