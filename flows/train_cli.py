"""`unimontage train` and `unimontage sample`: typer command functions the main CLI mounts.

The CLI lives with the flows (the top layer); `training/` stays importable without Prefect.
"""

from __future__ import annotations

import json
from typing import Optional

import typer

from flows.cli_errors import fail


def train(
    config: Optional[str] = typer.Option(None, "--config", help="YAML/JSON config file, or a preset name: tiny, "
                                         "small, demo, imontage, dreamomni (training/configs/)."),
    dataset: list[str] = typer.Option([], "--dataset", help="Lance dataset URI[@VERSION]; repeat for several. "
                                      "Without @VERSION the latest is pinned; @TAG (e.g. @reviewed) pins the version "
                                      "the tag names. Replaces the config's datasets (stages that list their own "
                                      "keep them)."),
    out: str = typer.Option("runs", "--out", help="Storage folder of runs (Ray Train storage_path)."),
    sets: list[str] = typer.Option([], "--set", help="Override any config field: key=value (repeatable), e.g. "
                                   "--set lr=1e-3 --set model_overrides.depth_single=2 --set curriculum=t2i,edit "
                                   "--set stages.1.steps=50"),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as the Prefect flow (training-run "
                                 "artifact, flow run in the lineage) or call the Ray Train job directly."),
) -> None:
    """Train UnifiedDiT on Lance datasets with Ray Train; re-running the same command resumes."""
    from training.config import load_config, preset_path

    overrides = list(sets)
    if dataset:
        overrides.append("datasets=" + json.dumps(list(dataset)))
    try:
        cfg = load_config(preset_path(config) if config else None, overrides)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    try:
        if prefect:
            from flows.train_flow import train_flow

            summary = train_flow(config=cfg.to_dict(), out=out)
        else:
            from training.job import run_training

            summary = run_training(cfg, out=out).summary()
    except (ValueError, FileNotFoundError) as exc:  # bad config, missing input, a corrupted checkpoint
        fail(str(exc))
    except RuntimeError as exc:  # the run failed; its node records why, the message says it in a line
        if not str(exc).startswith("training run "):
            raise
        fail(str(exc).splitlines()[0][:2000])
    typer.echo(json.dumps(summary, indent=1, default=str))
    if summary.get("checkpoint"):
        typer.echo(f"lineage: unimontage lineage {summary['checkpoint']}", err=True)


def sample(
    checkpoint: str = typer.Option(..., "--checkpoint", help="A checkpoint folder, or a run folder (its latest)."),
    inputs: list[str] = typer.Option([], "--inputs", "-i", help="Input image file; repeat for several "
                                     "(--inputs a.png --inputs b.png). None for text-to-image."),
    instruction: str = typer.Option(..., "--instruction", help="Instruction; refer to inputs as <image 1>, ..."),
    out: str = typer.Option(..., "--out", help="Folder for output_<k>.png, the fitted inputs and sample.json."),
    steps: int = typer.Option(28, "--steps", help="Euler steps."),
    cfg_scale: float = typer.Option(4.0, "--cfg", help="Text guidance scale (1 = off)."),
    image_cfg: float = typer.Option(1.0, "--image-cfg", help="Image guidance scale on the inputs (1 = off; "
                                    "needs a model trained with ref_dropout > 0)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed: the same seed gives the same images."),
    n_outputs: int = typer.Option(1, "--outputs", help="Number of output images."),
    size: Optional[str] = typer.Option(None, "--size", help="Output HEIGHTxWIDTH, fitted to the training pixel "
                                       "budget (default: the first input's fitted size; without inputs a square)."),
) -> None:
    """Generate output images from a checkpoint, input images and an instruction."""
    from datagen.images import ImageRejected
    from training.inference import sample_checkpoint

    try:
        paths = sample_checkpoint(checkpoint, inputs, instruction, out, steps=steps, cfg_scale=cfg_scale,
                                  image_cfg=image_cfg, seed=seed, n_outputs=n_outputs, size=size)
    except ImageRejected as exc:
        fail(f"input image refused ({exc.reason}): {exc.detail}")
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    for p in paths:
        typer.echo(str(p))

