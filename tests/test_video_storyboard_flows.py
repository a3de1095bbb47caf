"""Video-pair and storyboard flows on real Prefect, Ray and Lance, with videos the test writes."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import lance
import numpy as np
import pytest
import skimage.data as skd

from compute import harness
from datagen.store import lineage
from flows import card


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from datagen.video import make_demo_clips

    d = tmp_path_factory.mktemp("clips")
    make_demo_clips(d, seed=0)
    (d / "empty.mp4").write_bytes(b"")
    return d


def test_video_pairs_flow(prefect_harness, ray_local, clips, tmp_path):
    from flows.video_flow import video_pairs_flow

    out = str(tmp_path / "pairs.lance")
    res = video_pairs_flow(out=out, videos=str(clips), seed=1, workers=2, progress=False)
    ds = lance.dataset(out)
    rows = ds.to_table(columns=["task", "scores", "weight", "meta", "source_ids"]).to_pylist()
    assert {r["task"] for r in rows} == {"video.pair", "video.transition"}
    rejects = lance.dataset(res["rejects_uri"]).to_table().to_pylist()
    by_source = {}
    for r in rejects:
        by_source.setdefault(r["source"].split("#")[0].rsplit("/", 1)[-1], set()).add(r["reason"])
    assert by_source["empty.mp4"] == {"empty_file"}
    assert "too_small" in by_source["no_time_for_that.gif"]
    assert "static_pair" in {x for v in by_source.values() for x in v}  # the near-static clip
    # every video is accounted for: it gave samples or at least one reject
    node = lineage.dataset_node(out)
    acc = node["accounting"]
    assert acc["items"] == 7 and acc["items_with_samples"] + acc["items_rejected"] == 7
    motion = [dict(r["scores"])["motion_px"] for r in rows if r["task"] == "video.pair"]
    assert min(motion) > 0 and max(r["weight"] for r in rows) >= 1.0
    md = card.render_card(out)
    assert "motion_px" in md and "static_pair" in md
    # the same flow again is a no-op at the same version
    again = video_pairs_flow(out=out, videos=str(clips), seed=1, workers=1, progress=False)
    assert again["up_to_date"] and again["version"] == res["version"]


def test_storyboard_from_video(ray_local, tmp_path):
    from datagen.storyboard.demo_video import make_storyboard_clip
    from flows.storyboard_flow import plan_storyboard

    videos = tmp_path / "videos"
    make_storyboard_clip(videos, seed=0)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    res = harness.execute(plan_storyboard(str(tmp_path / "sb.lance"), 0, videos=str(videos)), workers=1,
                          progress=False)
    assert res.rows == 1 and res.items == 2
    row = lance.dataset(res.uri).to_table().to_pylist()[0]
    assert row["task"] == "storyboard" and 2 <= len(row["outputs"]) <= 4
    assert "<image 1>" in row["instruction"] and "Panel 1" in row["instruction"]
    scores = dict(row["scores"])
    assert scores["identity_consistency"] > 0 and scores["diversity"] > 0
    reasons = {r["reason"] for r in lance.dataset(res.rejects_uri).to_table().to_pylist()}
    assert reasons & {"corrupt_video", "not_a_video", "unreadable", "no_video_stream"}, reasons


class _Generator(BaseHTTPRequestHandler):
    """A stand-in image model: the same character, framed by the prompt and seed."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        face = skd.astronaut()[20:280, 120:380]
        k = (sum(map(ord, body["prompt"])) + body["seed"]) % 60
        img = cv2.resize(face[k // 2:, k:], (body["width"], body["height"]))
        if k % 2:
            img = img[:, ::-1]
        ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
        data = json.dumps({"image": base64.b64encode(png.tobytes()).decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_storyboard_from_http_generator(ray_local, tmp_path):
    from flows.storyboard_flow import plan_storyboard

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Generator)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/generate"
        plan = plan_storyboard(str(tmp_path / "gen.lance"), 2, generator=url, num=3, faces=False,
                               config={"width": 128, "height": 128})
        res = harness.execute(plan, workers=1, progress=False)
    finally:
        httpd.shutdown()
    assert res.rows + res.rejects >= 3 and res.items == 3
    node = lineage.dataset_node(res.uri)
    assert node["accounting"]["items_with_samples"] + node["accounting"]["items_rejected"] == 3
    for row in lance.dataset(res.uri).to_table().to_pylist():
        assert row["task"] == "storyboard" and row["outputs"]
    with pytest.raises(ValueError, match="exactly one"):
        plan_storyboard(str(tmp_path / "x.lance"), 0)
