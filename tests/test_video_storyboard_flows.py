"""Video-pair and storyboard products on real Prefect, Ray and Lance, with videos the test writes:
the derived flow (`flow_for`), `plan_run` + `execute`, and the derived CLI."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import lance
import numpy as np
import pytest
import skimage.data as skd

from compute import harness
from datagen import products
from datagen.product import Item, Plan
from datagen.store import lineage
from flows import card


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from datagen.video import make_demo_clips

    d = tmp_path_factory.mktemp("clips")
    make_demo_clips(d, seed=0)
    (d / "empty.mp4").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def story_clip(tmp_path_factory):
    from datagen.storyboard.demo_video import make_storyboard_clip

    return make_storyboard_clip(tmp_path_factory.mktemp("story"), seed=0)


def test_video_pairs_flow(prefect_harness, ray_local, clips, tmp_path):
    from flows.datasets import flow_for

    out = str(tmp_path / "pairs.lance")
    # A nested rule is set as a dict, as a deployment form or `prefect deployment run -p` would.
    res = flow_for("video-pairs")(out=out, videos=str(clips), seed=1, workers=2, progress=False,
                                  motion={"max_weight": 2.5})
    ds = lance.dataset(out)
    rows = ds.to_table(columns=["task", "scores", "weight", "meta", "source_ids"]).to_pylist()
    assert {r["task"] for r in rows} == {"video.pair", "video.transition", "video.recut"}
    rejects = lance.dataset(res["rejects_uri"]).to_table().to_pylist()
    by_source = {}
    for r in rejects:
        by_source.setdefault(r["source"].split("#")[0].rsplit("/", 1)[-1], set()).add(r["reason"])
    assert by_source["empty.mp4"] == {"empty_file"}
    assert "too_small" in by_source["no_time_for_that.gif"]
    assert "static_pair" in {x for v in by_source.values() for x in v}  # the near-static clip
    assert all(r["source"].startswith(str(clips)) for r in rejects)  # named by their URI, not a scratch copy
    # every video is accounted for: it gave samples or at least one reject
    node = lineage.dataset_node(out)
    acc = node["accounting"]
    assert acc["items"] == 7 and acc["items_with_samples"] + acc["items_rejected"] == 7
    assert node["product"] == "video-pairs" and node["config"]["motion"]["max_weight"] == 2.5
    assert node["config"]["sample_fps"] == 2.0 and node["config"]["optical_flow"] == "dis"
    srcs = {s["uri"].rsplit("/", 1)[-1]: s for s in node["sources"]}
    assert len(srcs) == 7 and srcs["pan.mp4"]["identity"] == "sha256:" + lineage.file_hash(clips / "pan.mp4")
    motion = [dict(r["scores"])["motion_px"] for r in rows if r["task"] == "video.pair"]
    assert min(motion) > 0 and 1.0 <= max(r["weight"] for r in rows) <= 2.5
    md = card.render_card(out)
    assert "motion_px" in md and "static_pair" in md
    # the same flow again is a no-op at the same version
    again = flow_for("video-pairs")(out=out, videos=str(clips), seed=1, workers=1, progress=False,
                                    motion={"max_weight": 2.5})
    assert again["up_to_date"] and again["version"] == res["version"]


def test_storyboard_from_video(ray_local, story_clip, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(story_clip, videos)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    res = harness.execute(harness.plan_run("storyboard", out=str(tmp_path / "sb.lance"), videos=str(videos)),
                          workers=1, progress=False)
    assert res.rows == 1 and res.items == 2
    row = lance.dataset(res.uri).to_table().to_pylist()[0]
    assert row["task"] == "storyboard" and 2 <= len(row["outputs"]) <= 4
    assert "<image 1>" in row["instruction"] and "Panel 1" in row["instruction"]
    scores = dict(row["scores"])
    assert scores["identity_consistency"] > 0 and scores["diversity"] > 0
    rejects = lance.dataset(res.rejects_uri).to_table().to_pylist()
    assert {r["reason"] for r in rejects} & {"corrupt_video", "not_a_video", "unreadable", "no_video_stream"}
    assert rejects[0]["source"] == str(videos / "broken.mp4")


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
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Generator)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/generate"
        spec = harness.plan_run("storyboard", out=str(tmp_path / "gen.lance"), seed=2, generator=url, num=3,
                                faces=False, width=128, height=128)
        assert not products.get("storyboard").uses_actors(spec.config)  # nothing to load: stateless tasks
        res = harness.execute(spec, workers=1, progress=False)
    finally:
        httpd.shutdown()
    assert res.rows + res.rejects >= 3 and res.items == 3
    node = lineage.dataset_node(res.uri)
    assert node["accounting"]["items_with_samples"] + node["accounting"]["items_rejected"] == 3
    for row in lance.dataset(res.uri).to_table().to_pylist():
        assert row["task"] == "storyboard" and row["outputs"]
        assert (row["outputs"][0]["width"], row["outputs"][0]["height"]) == (128, 128)
    with pytest.raises(ValueError, match="exactly one"):
        harness.plan_run("storyboard", out=str(tmp_path / "x.lance"))


# --------------------------------------------------------------------------- file inputs
def _run_items(product: str, config: dict, items: list[Item], out: str) -> harness.RunResult:
    """A run over hand-made items: what a plan listing file:// URIs or a vanished file would give."""
    prod = products.get(product)
    spec = harness.RunSpec(prod, prod.make_config(config), Plan(items=items), out, seed=0, shard_size=2)
    return harness.execute(spec, workers=1, progress=False)


def test_file_items_local_and_file_uri_run_and_a_missing_file_is_a_reject(ray_local, clips, story_clip, tmp_path):
    gone = str(tmp_path / "gone.mp4")
    pairs = _run_items("video-pairs", {"videos": str(clips)}, [
        Item(0, source=f"file://{clips / 'pan.mp4'}", data={"video_id": "pan.mp4"}, input="file"),
        Item(1, source=gone, data={"video_id": "gone.mp4"}, input="file"),
    ], str(tmp_path / "pairs.lance"))
    stories = _run_items("storyboard", {"videos": str(story_clip.parent)}, [
        Item(0, source=str(story_clip), data={"video_id": story_clip.name}, input="file"),
        Item(1, source=f"file://{gone}", data={"video_id": "gone.mp4"}, input="file"),
    ], str(tmp_path / "story.lance"))
    for res in (pairs, stories):
        assert res.rows >= 1 and res.items == 2
        rejects = lance.dataset(res.rejects_uri).to_table().to_pylist()
        missing = [r for r in rejects if r["index"] == 1]
        assert len(missing) == 1 and missing[0]["reason"] == "unreadable" and "gone.mp4" in missing[0]["detail"]
        assert missing[0]["source"].endswith(gone)
        assert {r["index"] for r in lance.dataset(res.uri).to_table(columns=["index"]).to_pylist()} == {0}
    ids = lance.dataset(pairs.uri).to_table(columns=["source_ids"]).column("source_ids").to_pylist()
    assert all(s[0] == "pan.mp4" for s in ids)


# --------------------------------------------------------------------------- the CLI
def _harness_env(tmp_path) -> dict:
    """A child process that talks to the session's Prefect test server (no ephemeral server to start)."""
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), TQDM_DISABLE="1",
                PREFECT_API_URL=PREFECT_API_URL.value(), COLUMNS="200")


def _cli(*args: str):
    from typer.testing import CliRunner

    from flows.cli import app

    return CliRunner().invoke(app, ["datagen", *args], env={"COLUMNS": "200"})  # wide: no flag is cut in --help


@pytest.mark.slow  # make test-slow: the flows of both products run in make test above
def test_cli_keeps_the_flags_and_runs_both_products(prefect_harness, ray_local, tmp_path, clips, story_clip):
    for cmd, flags in (("video-pairs", ["--videos", "--out", "--min-motion", "--fps", "--flow", "--seed", "--workers",
                                        "--progress", "--no-progress"]),
                       ("storyboard", ["--out", "--videos", "--generator", "--num", "--scorers", "--faces",
                                       "--no-faces", "--nsfw", "--fps", "--seed", "--workers"])):
        helptext = _cli(cmd, "--help")
        assert helptext.exit_code == 0, helptext.output
        missing = [f for f in flags if f not in helptext.stdout.split()]
        assert not missing, f"{cmd} lost {missing}"
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clips / "pan.mp4", videos)
    shutil.copy(story_clip, videos)
    out = str(tmp_path / "cli_pairs.lance")
    run = _cli("video-pairs", "--videos", str(videos), "--out", out, "--min-motion", "3", "--fps", "2", "--flow",
               "dis_fine", "--seed", "4", "--workers", "1", "--no-progress")
    assert run.exit_code == 0, run.output[-3000:]
    node = lineage.dataset_node(out)
    assert node["rows"] > 0 and node["accounting"]["items"] == 2 and node["seed"] == 4
    assert (node["config"]["min_motion_px"], node["config"]["optical_flow"]) == (3.0, "dis_fine")
    scorer = lance.dataset(out).to_table(columns=["scorer"]).column("scorer").to_pylist()
    assert set(scorer) == {"datagen.video.motion:dis_fine@320"}
    out = str(tmp_path / "cli_story.lance")
    run = _cli("storyboard", "--out", out, "--videos", str(videos), "--scorers", "diversity", "--faces", "--fps",
               "1.5", "--workers", "1", "--no-progress")
    assert run.exit_code == 0, run.output[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    assert result["items"] == 2 and result["rows"] + result["rejects"] >= 2
    node = lineage.dataset_node(out)
    assert node["config"]["scorers"] == ["diversity"] and node["config"]["sample_fps"] == 1.5


BAD_VALUES = [
    (["video-pairs", "--videos", "{v}", "--fps", "1000"], "sample_fps must be <= 30"),
    (["video-pairs", "--videos", "{v}", "--fps", "0"], "sample_fps must be >= 0.05"),
    (["video-pairs", "--videos", "{v}", "--min-motion", "-1"], "min_motion_px must be >= 0"),
    (["video-pairs", "--videos", "{v}", "--flow", "lucas-kanade"], "optical_flow: 'lucas-kanade' is not one of"),
    (["video-pairs", "--videos", "{v}", "--flow", "raft"], "needs raft_dir"),
    (["video-pairs", "--videos", "{v}", "--gap-range-s", "2,1"], "gap_range_s must be two numbers"),
    (["video-pairs", "--videos", "{v}", "--max-pairs-per-video", "0"], "max_pairs_per_video must be >= 1"),
    (["storyboard"], "exactly one of --videos DIR or --generator SPEC"),
    (["storyboard", "--videos", "{v}", "--generator", "http://127.0.0.1:9/x"], "exactly one"),
    (["storyboard", "--generator", "ftp://example/x"], "use diffusers:"),
    (["storyboard", "--videos", "{v}", "--scorers", "consistency,magic"], "unknown scorer 'magic'"),
    (["storyboard", "--videos", "{v}", "--scorers", "clip"], "needs a local model path"),
    (["storyboard", "--videos", "{v}", "--fps", "120"], "sample_fps must be <= 30"),
    (["storyboard", "--generator", "http://127.0.0.1:9/x", "--num", "0"], "num must be >= 1"),
    (["storyboard", "--videos", "{v}", "--min-panels", "5"], "min_panels (5) must be <= max_panels (4)"),
    # Found by the plan, inside the flow but still before Ray:
    (["video-pairs", "--videos", "{missing}"], "is not a folder or prefix"),
    (["storyboard", "--videos", "{empty}"], "no video files"),
]

# In one interpreter: every bad command line, then whether Ray (or a flow run) ever started.
_PROBE = """
import json, sys
from typer.testing import CliRunner
from flows.cli import app
cases = json.loads(sys.argv[1])
out = []
for args in cases:
    r = CliRunner().invoke(app, ["datagen", *args, "--out", sys.argv[2]])
    out.append([r.exit_code, r.stderr if hasattr(r, "stderr") else r.output])
import ray
print(json.dumps({"results": out, "ray_started": ray.is_initialized()}))
"""


def test_bad_values_exit_2_before_ray_starts(prefect_harness, tmp_path, clips):
    (tmp_path / "empty").mkdir()
    where = {"v": clips, "missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    cases = [[a.format(**where) for a in args] for args, _ in BAD_VALUES]
    out = str(tmp_path / "never.lance")
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(cases), out], env=_harness_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    for (args, message), (code, text) in zip(BAD_VALUES, report["results"]):
        assert code == 2, (args, code, text)
        assert message in " ".join(text.split()), (args, text)
    assert not report["ray_started"]
    assert not os.path.exists(out)
