"""`unimontage` command line: dataset flows, cards, lineage.

Flows run under Prefect (an ephemeral local server unless PREFECT_API_URL points at one)
and Ray (local unless RAY_ADDRESS is set).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(help="UniMontage: training data for unified many-to-many image generation and editing models.",
                  no_args_is_help=True, add_completion=False)
datagen_app = typer.Typer(help="Generate a dataset into Lance (one commit per run; re-run to resume).",
                          no_args_is_help=True)
app.add_typer(datagen_app, name="datagen")

OUT_HELP = "Lance dataset URI to write (local path or s3://...). Rejects go to <name>_rejects.lance beside it."
WORKERS_HELP = "Ray workers (actors, 1 CPU each). Output bytes do not depend on this."
SEED_HELP = "Dataset seed. Sample i draws from an RNG seeded by (seed, i)."


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _run_flow(flow, **kwargs) -> None:
    """Run a dataset flow and print its result; bad input (missing weights included: a
    FileNotFoundError) is a one-line error and exit code 2, not a traceback."""
    try:
        result = flow(**kwargs)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(result, indent=1, default=str))


@datagen_app.command("collage")
def collage(
    out: str = typer.Option(..., "--out", help=OUT_HELP),
    num: int = typer.Option(..., "--num", help="Number of samples to plan (each becomes a sample or a reject)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma-separated tasks (default: all). A family "
                                        "prefix selects its members, e.g. 'drag' = drag.translate,drag.scale,drag.rotate."),
    size: int = typer.Option(512, "--size", help="Side of the square output images, in pixels."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    assets: Optional[str] = typer.Option(None, "--assets", help="Asset folder (backgrounds/, cutouts/ RGBA) or a "
                                         "Lance asset table. Default: the embedded starter pack."),
    shard_size: int = typer.Option(16, "--shard-size", help="Samples per shard: the unit of resume."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """DreamOmni-style collage edit pairs: t2i, inpaint/outpaint, add/remove/replace, drag, ref, seg/det, multi-turn."""
    from flows.collage_flow import collage_flow, parse_tasks

    try:
        task_list = parse_tasks(tasks)
    except ValueError as exc:
        _fail(str(exc))
    _run_flow(collage_flow, out=out, num=num, seed=seed, tasks=task_list, size=size, workers=workers,
              assets=assets, shard_size=shard_size, progress=progress)


@datagen_app.command("multiview")
def multiview(
    captures: str = typer.Option(..., "--captures", help="Folder of captures: MVImageNet/COLMAP (images/ + "
                                 "sparse/0/{cameras,images}.{bin,txt}) or CO3D (frame_annotations.jgz)."),
    out: str = typer.Option(..., "--out", help=OUT_HELP),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    per_capture: int = typer.Option(2, "--per-capture", help="Samples drawn per capture (distinct view sets)."),
    max_extra: int = typer.Option(4, "--max-extra", help="At most this many extra views per sample (1-4)."),
    scorers: str = typer.Option("sharpness,exposure,geometry,diversity", "--scorers",
                                help="Scorers: sharpness, exposure, geometry, consistency, diversity, "
                                "clip=DIR, vlm=DIR, vlm-rubric=DIR (local model folders)."),
    min_geo: Optional[float] = typer.Option(None, "--min-geo", help="Reject samples whose geometric "
                                            "consistency (RANSAC inlier ratio) is below this."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Multi-view samples: reference view -> 1-4 further views, camera motion in words, scored."""
    from flows.multiview_flow import multiview_flow

    _run_flow(multiview_flow, out=out, captures=captures, seed=seed, per_capture=per_capture, max_extra=max_extra,
              scorers=scorers, min_geo=min_geo, workers=workers, progress=progress)


@datagen_app.command("conditions")
def conditions(
    images: str = typer.Option(..., "--images", help="A folder of images (captions from <stem>.txt) or a "
                               "UniMontage Lance dataset URI[@VERSION] (each row's first output image)."),
    out: str = typer.Option(..., "--out", help=OUT_HELP),
    kinds: str = typer.Option("canny,lineart_standard,seg", "--kinds",
                              help="Condition kinds: canny, lineart_standard, seg (exact regions; Lance sources) "
                              "need no weights; lineart, lineart_coarse, hed, pose (openpose), openpose_full, "
                              "depth (Depth-Anything-V2) and other controlnet_aux annotators need --weights."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Local weights: a root holding Annotators/ "
                                          "(controlnet_aux layout) and Depth-Anything-V2-Small-hf/, or one of those folders."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    multi_prob: float = typer.Option(0.3, "--multi-prob", help="Probability that a sample combines 2-3 maps."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Condition-reference samples: ControlNet condition map(s) + prompt -> the source image."""
    from flows.conditions_flow import conditions_flow, resolve_kinds

    try:
        resolve_kinds(kinds, weights)  # unknown kinds and missing weights fail before Prefect or Ray start
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    _run_flow(conditions_flow, out=out, images=images, kinds=kinds, weights=weights, seed=seed,
              multi_prob=multi_prob, workers=workers, progress=progress)


@datagen_app.command("video-pairs")
def video_pairs(
    videos: str = typer.Option(..., "--videos", help="Folder (or object-store prefix, e.g. s3://bucket/clips) "
                               "of video files: mp4, mov, mkv, webm, avi, gif, ..."),
    out: str = typer.Option(..., "--out", help=OUT_HELP),
    min_motion: Optional[float] = typer.Option(None, "--min-motion", help="Reject pairs whose mean motion is "
                                               "below this many pixels of the ORIGINAL resolution (a static-pair "
                                               "floor of 0.4% of the frame diagonal always applies)."),
    fps: float = typer.Option(2.0, "--fps", help="Frames sampled per second; pairs and cuts are found on them."),
    flow_method: str = typer.Option("dis", "--flow", help="Optical flow: dis (default), dis_fine, farneback."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Video frame pairs within shots and across cuts, scored by optical-flow motion (iMontage)."""
    from flows.video_flow import video_pairs_flow

    _run_flow(video_pairs_flow, out=out, videos=videos, seed=seed, min_motion=min_motion, fps=fps,
              flow_method=flow_method, workers=workers, progress=progress)


@datagen_app.command("storyboard")
def storyboard(
    out: str = typer.Option(..., "--out", help=OUT_HELP),
    videos: Optional[str] = typer.Option(None, "--videos", help="Folder of videos: one storyboard per video "
                                         "from keyframes across its shots."),
    generator: Optional[str] = typer.Option(None, "--generator", help="diffusers:/local/pipeline or an "
                                            "http(s):// endpoint; makes --num storyboards from templates."),
    num: int = typer.Option(8, "--num", help="Storyboards to generate with --generator."),
    scorers: str = typer.Option("consistency,diversity", "--scorers", help="Scorers (see datagen multiview)."),
    faces: bool = typer.Option(True, "--faces/--no-faces", help="Character references must show one face."),
    nsfw: Optional[str] = typer.Option(None, "--nsfw", help="Local image-classifier folder for the NSFW filter."),
    fps: float = typer.Option(2.0, "--fps", help="Frames sampled per second when reading videos."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Storyboards: character reference -> panels with captions, from videos or a generator."""
    from flows.storyboard_flow import storyboard_flow

    _run_flow(storyboard_flow, out=out, videos=videos, generator=generator, num=num, seed=seed, scorers=scorers,
              faces=faces, nsfw=nsfw, fps=fps, workers=workers, progress=progress)


@app.command("card")
def card_cmd(
    uri: str = typer.Argument(..., help="Dataset URI, optionally @VERSION."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the full markdown card (with images) here."),
    publish: bool = typer.Option(False, "--publish", help="Also publish it as the keyed Prefect artifact."),
) -> None:
    """Print a dataset card: counts per task, rejects by reason, schema, how to load, lineage."""
    from flows import card

    try:
        markdown = card.render_card(uri)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if out:
        out.write_text(markdown)
        typer.echo(f"wrote {out} ({len(markdown):,} bytes)", err=True)
    if publish:
        from prefect.artifacts import create_markdown_artifact

        from datagen.store.lance_io import split_version

        create_markdown_artifact(key=card.artifact_key(split_version(uri)[0]), markdown=markdown)
    typer.echo(card.strip_images(markdown))


@app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help="Dataset URI[@VERSION] or a checkpoint/training-run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the graph as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the dataset's content hash from its rows."),
) -> None:
    """Print the lineage graph back to flow runs and sources."""
    from datagen.store import lineage

    tree = lineage.walk(ref)
    if tree["node"].get("kind") == "missing":
        _fail(tree["node"]["error"])
    typer.echo(json.dumps(tree, indent=1, default=str) if as_json else lineage.render(tree))
    if verify:
        res = lineage.verify_dataset(ref)
        typer.echo(json.dumps(res, indent=1))
        if not res["ok"]:
            raise typer.Exit(1)


def _mount_training() -> None:
    """`train` and `sample` live with the trainer; the main CLI mounts them."""
    from flows.train_cli import sample, train

    app.command("train", help=train.__doc__)(train)
    app.command("sample", help=sample.__doc__)(sample)


_mount_training()


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="unimontage")


if __name__ == "__main__":
    sys.exit(main())
