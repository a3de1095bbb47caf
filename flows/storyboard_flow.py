"""Storyboards: from the shots of videos, or from a generator backend, scored and filtered.

`--videos DIR`: one storyboard per video (keyframes across its cuts that keep the same
subject). `--generator diffusers:DIR | http(s)://URL`: N storyboards from seeded templates.
Character references pass a face filter (and an NSFW filter when `--nsfw DIR` is given).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen.store import lineage
from flows import scorer_specs
from flows.tasks import publish
from flows.video_flow import list_videos
from flows.workers.storyboard import StoryboardWorker, make_generator

DEFAULT_SCORERS = "consistency,diversity"


def plan_storyboard(out: str, seed: int, videos: str | None = None, generator: str | None = None, num: int = 8,
                    scorers: str | None = DEFAULT_SCORERS, faces: bool = True, nsfw: str | None = None,
                    fps: float = 2.0, config: dict[str, Any] | None = None) -> harness.DatasetPlan:
    from dataclasses import asdict

    from datagen.storyboard import StoryboardConfig

    if bool(videos) == bool(generator):
        raise ValueError("give exactly one of --videos DIR or --generator SPEC")
    specs = scorer_specs.parse(scorers)
    scorer_specs.check_weights(specs)
    if nsfw:
        from datagen.scoring.weights import require_hf_folder

        require_hf_folder(nsfw, "NSFW classifier")
    cfg = asdict(StoryboardConfig(**(config or {})))
    if videos:
        files = list_videos(videos)
        root = videos.rstrip("/") if "://" in videos else os.path.abspath(videos)
        # Samples name their video relative to --videos: the same videos elsewhere give the same bytes.
        items = [{"index": i, "source": uri, "video_id": uri[len(root):].lstrip("/")} for i, (uri, _) in enumerate(files)]
        srcs = [{"kind": "video", "uri": uri, "bytes": n,
                 "content_hash": lineage.file_hash(uri) if "://" not in uri else None} for uri, n in files]
    else:
        make_generator(generator)  # a bad spec fails here, before any work
        items = [{"index": i, "source": f"generator:{generator}#{i}"} for i in range(num)]
        srcs = [{"kind": "generator", "uri": generator, "content_hash": None}]
    return harness.DatasetPlan(
        kind="storyboard", out=out, seed=seed,
        config={"storyboard": cfg, "scorers": specs, "faces": faces, "nsfw": bool(nsfw), "fps": fps,
                "sources": [s["content_hash"] or s["uri"] for s in srcs]},
        items=items, make_worker=partial(StoryboardWorker, seed, cfg, specs, faces, nsfw, generator, fps), shard_size=1,
        sources=srcs, parameters={"out": out, "videos": videos, "generator": generator, "num": num, "seed": seed,
                                  "scorers": scorers, "faces": faces, "nsfw": nsfw, "fps": fps},
        generator="datagen.storyboard")


@task(name="plan-storyboard", cache_policy=NO_CACHE)
def plan_task(**kw: Any) -> harness.DatasetPlan:
    plan = plan_storyboard(**kw)
    get_run_logger().info("planned %d storyboards", len(plan.items))
    return plan


@flow(name="storyboard-dataset", log_prints=True)
def storyboard_flow(out: str, videos: str | None = None, generator: str | None = None, num: int = 8, seed: int = 0,
                    scorers: str | None = DEFAULT_SCORERS, faces: bool = True, nsfw: str | None = None,
                    fps: float = 2.0, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Character reference -> storyboard panels with captions, identity/diversity scored."""
    plan = plan_task(out=out, seed=seed, videos=videos, generator=generator, num=num, scorers=scorers, faces=faces,
                     nsfw=nsfw, fps=fps)
    result, key = publish(plan, workers, progress)
    return result.summary() | {"card": key}
