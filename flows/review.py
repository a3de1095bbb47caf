"""The review step: a person approves or rejects a dataset version before training may use it.

    pin URI[@VERSION] -> publish its card -> publish a random sample grid -> pause for the
    reviewer's decision (Prefect's pause-for-input: the UI shows a form) -> record it

The decision (approve / reject, the reviewer's name, flagged sample ids with reasons, a
comment) is recorded by `datagen.store.reviews`: a `review` lineage node beside the dataset,
the flagged ids in `<name>_flags.lance`, and the Lance tag `reviewed` on an approved version,
so training can pin `URI@reviewed` and leave flagged rows out.

From the UI: run the `review-dataset` deployment (entrypoint `flows/review.py:review_flow`),
open the paused run, press Resume and fill in the form. In a terminal:
`unimontage review URI --approve --reviewer NAME [--flag ID=REASON ...]` takes the same
path with the decision given up front (the flow records it without pausing).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from datagen.report import contact_sheet, markdown
from datagen.schema import from_row
from datagen.store import lance_io, reviews
from flows import card
from flows.tasks import current_flow_run, publish_card

POLL_SECONDS = 2  # how often a paused run asks the server whether it was resumed
MAX_ATTEMPTS = 3  # a decision naming unknown sample ids is sent back this many times, then the run fails


class FlaggedSample(BaseModel):
    sample_id: str = Field(description="The sample_id of a row that should not be trained on (see the list above).")
    reason: str = Field(description="Why, in a few words (wrong edit, artefact, unsafe, duplicate, ...).")


class ReviewDecision(RunInput):
    """The form the Prefect UI shows when the paused review run is resumed."""

    decision: Literal["approve", "reject"] = Field(description="approve: training may pin this version as "
                                                   "URI@reviewed; reject: it may not.")
    reviewer: str = Field(description="Your name, recorded with the decision.")
    flags: list[FlaggedSample] = Field(default_factory=list, description="Sample ids to leave out of training, "
                                       "each with a reason (optional).")
    comment: str = Field("", description="Anything the next reviewer should know (optional).")


@task(name="pin-version", cache_policy=NO_CACHE)
def pin_version(dataset: str) -> tuple[str, int]:
    """`URI[@VERSION|@TAG]` -> (URI, VERSION): the review is about exactly this version."""
    uri, version = lance_io.resolve_ref(dataset)
    return lance_io.normalise_uri(uri), lance_io.open_dataset(dataset).version if version is None else version


def sample_positions(rows: int, size: int, seed: int, version: int) -> list[int]:
    """`size` distinct row positions, the same for the same (seed, version)."""
    rng = np.random.default_rng([seed, version])
    return sorted(rng.choice(rows, size=min(size, rows), replace=False).tolist()) if rows else []


def sample_markdown(uri: str, version: int, size: int, seed: int) -> tuple[str, list[str]]:
    """A numbered grid of random rows (inputs -> outputs, the instruction under each) and a
    table of their sample ids to copy into the form; returns (markdown, sample ids)."""
    ds = lance_io.open_dataset(f"{uri}@{version}")
    positions = sample_positions(ds.count_rows(), size, seed, version)
    if not positions:
        return "This version has no rows.", []
    samples = [from_row(r) for r in ds.take(positions, columns=card.IMAGE_COLUMNS).to_pylist()]
    captions = [f"#{i + 1}  {s.task}  |  {s.instruction or '(no instruction)'}" for i, s in enumerate(samples)]
    sheet = contact_sheet.render(samples, tile=96, label_px=12, captions=captions)
    # A list, not a table: instructions are long and the UI never wraps a table cell.
    rows = [f"- #{i + 1} {markdown.code(s.sample_id)} {markdown.code(s.task)}: {markdown.escape(s.instruction)}"
            for i, s in enumerate(samples)]
    text = "\n".join([
        f"{len(samples)} random rows of {markdown.breakable(uri)} version {version} (seed {seed}); inputs in blue -> "
        "outputs in green. Copy a sample_id from the list below to flag it.", "",
        f"![review sample]({markdown.data_uri(contact_sheet.to_jpeg(sheet, quality=75), 'image/jpeg')})", "",
        *rows])
    return text, [s.sample_id for s in samples]


@task(name="publish-review-sample", cache_policy=NO_CACHE)
def publish_sample(uri: str, version: int, size: int, seed: int) -> tuple[str, list[str]]:
    text, ids = sample_markdown(uri, version, size, seed)
    create_markdown_artifact(key=card.artifact_key(uri).replace("dataset-", "review-sample-", 1),
                             markdown=f"# Review sample of {markdown.code(lance_io.dataset_name(uri))} "
                                      f"@ version {version}\n\n{text}",
                             description=f"Random rows shown to the reviewer of {uri}@{version}")
    return text, ids


@task(name="record-review", cache_policy=NO_CACHE)
def record(uri: str, version: int, decision: dict[str, Any], shown: list[str]) -> dict[str, Any]:
    node = reviews.record_review(
        f"{uri}@{version}", decision=decision["decision"], reviewer=decision["reviewer"],
        flags=[reviews.Flag(f["sample_id"], f["reason"]) for f in decision.get("flags") or []],
        comment=decision.get("comment") or "", flow_run=current_flow_run(), shown=shown)
    get_run_logger().info("%s@%d %s by %s; %d sample(s) flagged; tag %r %s", uri, version, node["decision"],
                          node["reviewer"], (node["flags"] or {}).get("rows", 0), reviews.REVIEW_TAG,
                          node["tag"]["action"])
    return node


def _problem(uri: str, version: int, decision: dict[str, Any]) -> str | None:
    """Why a decision cannot be recorded (unknown or repeated sample ids, empty reasons), or None."""
    try:
        reviews.check_decision(lance_io.open_dataset(f"{uri}@{version}"), decision=decision["decision"],
                               reviewer=decision["reviewer"], comment=decision.get("comment") or "",
                               flags=[reviews.Flag(f["sample_id"], f["reason"]) for f in decision.get("flags") or []])
    except ValueError as exc:
        return str(exc)
    return None


def _ask(uri: str, version: int, card_key: str, sample: str, timeout_s: int) -> dict[str, Any]:
    """Pause until the reviewer resumes the run with a valid decision (up to MAX_ATTEMPTS)."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    note = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        description = "\n".join([
            f"## Review {markdown.code(lance_io.dataset_name(uri))} @ version {version}", "",
            note,
            f"The dataset card is the artifact {markdown.code(card_key)} (this run's Artifacts tab). "
            "Approve to let training pin this version as `URI@reviewed`; flag sample ids (from the list below) to "
            "leave them out.", "", sample])
        logger.info("waiting for a review decision on %s@%d: open %s and press Resume", uri, version,
                    flow_run.ui_url or "this flow run in the Prefect UI")
        answer = pause_flow_run(wait_for_input=ReviewDecision.with_initial_data(description=description),
                                timeout=timeout_s, poll_interval=POLL_SECONDS, key=f"review-{attempt}")
        decision = answer.model_dump(include={"decision", "reviewer", "flags", "comment"})
        problem = _problem(uri, version, decision)
        if problem is None:
            return decision
        logger.warning("decision not recorded (attempt %d of %d): %s", attempt, MAX_ATTEMPTS, problem)
        note = f"**Not recorded, please correct:** {markdown.escape(problem)}\n"
    raise ValueError(f"no valid review decision after {MAX_ATTEMPTS} attempts: {problem}; nothing was recorded")


@flow(name="review-dataset", description="Approve or reject a dataset version (and flag samples) after looking at "
      "its card and a random sample; gates training on URI@reviewed.")
def review_flow(dataset: str, sample_size: int = 12, seed: int = 0, timeout_hours: float = 24.0,
                decision: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Review one dataset version.

    Args:
        dataset: Lance dataset URI[@VERSION] to review (the latest version without @VERSION).
        sample_size: Random rows shown to the reviewer.
        seed: Seed of the random rows (the same seed and version show the same rows).
        timeout_hours: How long the run waits for a decision before it fails (nothing is recorded then).
        decision: Leave empty to decide in the UI when the run pauses. Given (as the CLI's --approve/--reject
            do): {"decision": "approve"|"reject", "reviewer": NAME, "flags": [{"sample_id", "reason"}], "comment"}.
    """
    if not 1 <= sample_size <= 200:
        raise ValueError(f"sample_size must be between 1 and 200, got {sample_size}")
    uri, version = pin_version(dataset)
    if decision is None:  # the reviewer decides in the UI, after looking
        card_key = publish_card(uri, version)
        sample, shown = publish_sample(uri, version, sample_size, seed)
        decision = _ask(uri, version, card_key, sample, int(timeout_hours * 3600))
    else:  # decided up front (the CLI's --approve/--reject): a bad decision is refused before anything is written
        decision = ReviewDecision.model_validate(decision).model_dump(include={"decision", "reviewer", "flags",
                                                                               "comment"})
        problem = _problem(uri, version, decision)
        if problem:
            raise ValueError(f"review of {uri}@{version} not recorded: {problem}")
        shown = []
    node = record(uri, version, decision, shown)
    card_key = publish_card(uri, version)  # the card's newest version shows the decision
    return {"dataset": f"{uri}@{version}", "decision": node["decision"], "reviewer": node["reviewer"],
            "flagged": (node["flags"] or {}).get("rows", 0), "tag": node["tag"], "review_id": node["id"],
            "card": card_key}
