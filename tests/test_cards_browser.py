"""A dataset card and a training card as a reviewer sees them: served by a real `prefect server
start` on 127.0.0.1 and rendered by headless Debian Chromium, driven over the DevTools protocol
(websockets, already a Prefect dependency). Every image decodes (naturalWidth > 0) and no element
of the card overflows its container (fenced code blocks scroll by design and are exempt, but the
training card's "Use it" commands must fit without scrolling).

Needs /usr/bin/chromium (`.ci/run` installs it: `apt-get install -y chromium`). With
UNIMONTAGE_SCREENSHOTS=DIR the screenshots (the card's top, the lineage picture, the training
card's top and its loss section) are copied to DIR: that is how docs/card.png,
docs/lineage-card.png and docs/training-card.png are made.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_training_job import reference, setup  # noqa: F401  (the training test's run, made once)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium (.ci/run installs it)")

# Elements of the card wider than their box, or outside the card's column; fenced code scrolls.
OVERFLOWS = """(() => {
  const root = document.querySelector('.artifact-data-markdown');
  const rr = root.getBoundingClientRect(), out = [];
  const label = el => el.tagName.toLowerCase() + ' "' + (el.innerText || el.alt || '').slice(0, 60) + '"';
  for (const el of [root, ...root.querySelectorAll('*')]) {
    if (el.closest('.markdown-renderer__code, .p-code-container--block')) continue;
    const b = el.getBoundingClientRect();
    if (getComputedStyle(el).overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1)
      out.push('wider than its box: ' + label(el) + ` ${el.scrollWidth} > ${el.clientWidth}`);
    if (b.width > 0 && (b.right > rr.right + 1 || b.left < rr.left - 1))
      out.push('outside the card: ' + label(el) + ` ${Math.round(b.left)}..${Math.round(b.right)}`);
  }
  return out;
})()"""
IMAGES = "[...document.querySelectorAll('.artifact-data-markdown img')]"


class Chromium:
    """Headless Chromium on an empty profile, one page, spoken to over the DevTools protocol."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 1000):
        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and self.proc.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        self.ws = connect(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)
        self.resize(width, height)

    def call(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:  # events arrive in between; the answer carries our id
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == i:
                assert "error" not in msg, msg["error"]
                return msg.get("result", {})

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in res, res["exceptionDetails"]
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(f"!!({expression})"):
                return
            time.sleep(0.2)
        raise AssertionError(f"not true after {timeout} s: {expression}")

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path, clip: dict) -> None:
        # `clip` in viewport coordinates: the Prefect UI scrolls an inner container, not the page, so
        # capturing "beyond the viewport" would lay the page out again, unscrolled.
        data = self.call("Page.captureScreenshot", format="png", clip=clip | {"scale": 1}, captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)


def _drain_prefect_workers() -> None:
    """Events and logs leave through process-wide workers bound to the first API they talked to:
    flush them before and after using this server, as Prefect's own test harness does, so no
    later test's events go to a server that is gone."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for worker in (APILogWorker, EventsWorker):  # only instances that exist; none are started here
            result = worker.drain_all()
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on 127.0.0.1 with its own database, its UI pointed at its API."""
    home, port = tmp_path_factory.mktemp("prefect-ui"), _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_UI_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{api}/health", timeout=5).read() == b"true":
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (home / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        yield api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def _latest_artifact(api: str, key: str) -> dict:
    query = json.dumps({"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}).encode()
    request = urllib.request.Request(f"{api}/artifacts/filter", data=query, headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))[0]


CARD = "document.querySelector('.artifact-data-markdown')"


def _screenshot(browser: Chromium, element: str, path: Path, *, rest_of_card: bool = False) -> None:
    """What is on screen of `element` once it is scrolled to the top (with `rest_of_card`: the
    card's column from that element down to the bottom of the screen); never a blank frame."""
    browser.js(f"{element}.scrollIntoView({{block: 'start'}})")
    time.sleep(0.5)
    box = CARD if rest_of_card else element
    r = browser.js(f"(() => {{ const r = {box}.getBoundingClientRect(), t = {element}.getBoundingClientRect().top; "
                   "return [r.left, t, r.width, Math.min(r.bottom - t, innerHeight - t)]; })()")
    browser.screenshot(path, {"x": r[0] - 12, "y": max(0, r[1] - 12), "width": r[2] + 24, "height": r[3] + 12})
    shot = np.asarray(Image.open(path).convert("L"), np.float32)
    assert shot.shape[0] > 200 and shot.std() > 20, (path.name, shot.shape, shot.std())


def test_card_renders_in_chromium_without_overflow(prefect_server, ray_local, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.datasets import flow_for
    from flows.review import review_flow

    _drain_prefect_workers()
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server}):  # the dataset flow publishes its card ...
            res = flow_for("collage")(out=str(tmp_path / "data" / "collage.lance"), num=8, size=96, seed=3,
                                      workers=1, tasks=("t2i.text", "edit.add", "drag.rotate", "inpaint"),
                                      progress=False)
            review = review_flow(dataset=res["uri"], sample_size=4, decision={  # ... and the review republishes it
                "decision": "approve", "reviewer": "Ada", "comment": "instructions match the pixels"})
            _drain_prefect_workers()
    finally:
        _drain_prefect_workers()
    key = res["card"]
    assert review["card"] == key and review["decision"] == "approved"
    artifact = _latest_artifact(prefect_server, key)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Chromium(profile)
    try:
        started = time.monotonic()
        browser.call("Page.navigate", url=prefect_server.replace("/api", f"/artifacts/artifact/{artifact['id']}"))
        expected = artifact["data"].count("](data:image/")  # a grid per task and the lineage picture
        assert expected == 5
        browser.wait_for(f"{IMAGES}.length >= {expected} && {IMAGES}.every(i => i.complete)", timeout=90)
        ready_s = time.monotonic() - started
        images = browser.js(f"{IMAGES}.map(i => [i.alt, i.naturalWidth, i.naturalHeight])")
        assert len(images) == expected, images
        assert all(w > 0 and h > 0 for _, w, h in images), images
        assert [alt for alt, _, _ in images][-1] == "lineage"
        headings = browser.js("[...document.querySelectorAll('.artifact-data-markdown h2')].map(h => h.innerText)")
        assert {"Review", "Load it", "Samples per task", "Scores", "Lineage"} <= {h.split(" (")[0] for h in headings}
        assert browser.js(OVERFLOWS) == []
        # screenshots, each of what is on screen: the top of the card, then the lineage picture
        shots = {
            "card.png": "document.querySelector('.artifact-data-markdown')",
            "lineage-card.png": "document.querySelector('.artifact-data-markdown img[alt=lineage]')",
        }
        for name, element in shots.items():
            _screenshot(browser, element, tmp_path / name)
    finally:
        browser.close()
    print(f"card of {len(images)} images ready in the UI in {ready_s:.1f} s")
    target = os.environ.get("UNIMONTAGE_SCREENSHOTS")
    if target:
        for name in shots:
            shutil.copy(tmp_path / name, Path(target) / name)


def test_training_card_renders_in_chromium_without_overflow(prefect_server, reference, tmp_path):  # noqa: F811
    """The card of the training test's two-stage run, published by the `publish-training-card`
    flow to this server: its five pictures decode, nothing overflows, the commands fit unscrolled."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.train_flow import publish_run_card_flow

    _drain_prefect_workers()
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server}):
            key = publish_run_card_flow(reference["run_dir"])
            _drain_prefect_workers()
    finally:
        _drain_prefect_workers()
    artifact = _latest_artifact(prefect_server, key)
    assert artifact["flow_run_id"] and reference["run_dir"] in artifact["description"]
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = Chromium(profile, height=1100)
    alts = ["task shares", "loss", "loss per task family", "generations", "lineage"]
    try:
        browser.call("Page.navigate", url=prefect_server.replace("/api", f"/artifacts/artifact/{artifact['id']}"))
        browser.wait_for(f"{IMAGES}.length >= {len(alts)} && {IMAGES}.every(i => i.complete)", timeout=90)
        images = browser.js(f"{IMAGES}.map(i => [i.alt, i.naturalWidth, i.naturalHeight])")
        assert [alt for alt, _, _ in images] == alts and all(w > 0 and h > 0 for _, w, h in images), images
        headings = browser.js("[...document.querySelectorAll('.artifact-data-markdown h2')].map(h => h.innerText)")
        assert {"Stages", "Task mix", "Text", "Loss", "Generations of the latest checkpoint", "Use it",
                "Lineage"} <= set(headings), headings
        assert browser.js(OVERFLOWS) == []
        # every task in the loss table, whatever the last steps drew
        cells = browser.js("[...document.querySelectorAll('.artifact-data-markdown td:first-child')]"
                           ".map(td => td.innerText)")
        assert {"edit.add", "edit.remove", "t2i.photo", "video.pair"} <= set(cells)
        # the commands are readable without scrolling: no code block is wider than its box
        wide = browser.js("[...document.querySelectorAll('.artifact-data-markdown pre, .artifact-data-markdown "
                          ".markdown-renderer__code')].filter(e => e.scrollWidth > e.clientWidth + 1)"
                          ".map(e => e.innerText.slice(0, 80))")
        assert wide == [], wide
        shots = {"training-card.png": "document.querySelector('.artifact-data-markdown')",
                 "training-card-loss.png": "[...document.querySelectorAll('.artifact-data-markdown h2')]"
                                           ".find(h => h.innerText === 'Loss')"}
        for name, element in shots.items():
            _screenshot(browser, element, tmp_path / name, rest_of_card=name.endswith("-loss.png"))
    finally:
        browser.close()
    target = os.environ.get("UNIMONTAGE_SCREENSHOTS")
    if target:
        for name in shots:
            shutil.copy(tmp_path / name, Path(target) / name)
