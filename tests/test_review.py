"""The review step end to end on Prefect's real test harness, real Ray and real Lance: the flow
pauses for input, a helper thread acts as the UI (reads what the paused run shows, then resumes it
with `resume_flow_run(flow_run_id, run_input=...)`, the call behind the UI's Resume form), and the
decision lands in the lineage, the `reviewed` tag and the flags table; training pins URI@reviewed."""

from __future__ import annotations

import contextvars
import threading
import time

import cloudpickle
import lance
import pytest
from typer.testing import CliRunner

import tests.toy_product as toy
from compute import harness
from datagen.store import lance_io, lineage, reviews

cloudpickle.register_pickle_by_value(toy)


def _toy(out, num):
    return harness.execute(harness.prepare(toy.PRODUCT, toy.ToyConfig(num=num), out=str(out), seed=4, shard_size=6),
                           workers=1, progress=False)


@pytest.fixture(scope="module")
def toy_registered():
    from datagen import products

    if "toy" not in products.names():
        products.register(toy.PRODUCT)


class ReviewerAtTheUI:
    """The reviewer at the UI: waits for each pause of the review run, records what the form shows
    (description and schema, as the UI reads them), and resumes with the next answer."""

    def __init__(self, answers: list[dict]):
        self.answers, self.seen, self.error = answers, [], None
        ctx = contextvars.copy_context()  # the harness's API settings live in context variables
        self.thread = threading.Thread(target=ctx.run, args=(self._run,), daemon=True)

    def _run(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterState
        from prefect.client.schemas.filters import FlowRunFilterStateType
        from prefect.client.schemas.objects import StateType
        from prefect.flow_runs import resume_flow_run
        from prefect.input.actions import read_flow_run_input
        from prefect.input.run_input import keyset_from_paused_state

        try:
            keys: set[str] = set()
            with get_client(sync_client=True) as client:
                for answer in self.answers:
                    deadline = time.monotonic() + 180
                    while True:
                        runs = client.read_flow_runs(
                            flow_filter=FlowFilter(name=FlowFilterName(any_=["review-dataset"])),
                            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                                type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
                        fresh = [r for r in runs if r.state.state_details.pause_key not in keys]
                        if fresh:
                            break
                        assert time.monotonic() < deadline, "the review run never paused"
                        time.sleep(0.3)
                    run = fresh[0]
                    keys.add(run.state.state_details.pause_key)
                    keyset = keyset_from_paused_state(run.state)
                    self.seen.append({"description": read_flow_run_input(keyset["description"], flow_run_id=run.id),
                                      "schema": read_flow_run_input(keyset["schema"], flow_run_id=run.id)})
                    resume_flow_run(run.id, run_input=answer)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=200)
        if self.error:
            raise self.error


def test_review_pauses_for_a_decision_and_gates_training(prefect_harness, ray_local, tmp_path, toy_registered):
    from flows import card
    from flows.review import review_flow, sample_positions
    from training.index import pin

    res = _toy(tmp_path / "toy.lance", num=20)
    ids = lance.dataset(res.uri).to_table(columns=["sample_id"]).column("sample_id").to_pylist()
    flagged = ids[sample_positions(len(ids), 4, 0, res.version)[0]]  # one of the rows the reviewer was shown
    answers = [
        {"decision": "approve", "reviewer": "Ada", "flags": [{"sample_id": "not-an-id", "reason": "typo"}]},
        {"decision": "approve", "reviewer": "Ada", "flags": [{"sample_id": flagged, "reason": "square off the grid"}],
         "comment": "one odd square"},
    ]
    with ReviewerAtTheUI(answers) as ui:
        result = review_flow(dataset=res.uri, sample_size=4, seed=0, timeout_hours=0.1)
    # what the reviewer saw: the sample grid with its ids, and a form for the decision
    first, second = ui.seen
    assert "![review sample](data:image/jpeg;base64," in first["description"] and flagged in first["description"]
    assert {"decision", "reviewer", "flags", "comment"} <= set(first["schema"]["properties"])
    assert "Not recorded, please correct:" in second["description"] and "not-an-id" in second["description"]
    assert result["decision"] == "approved" and result["flagged"] == 1 and result["tag"]["action"] == "created"

    # the decision in the lineage, the tag and the flags table
    [node] = reviews.reviews_of(res.uri, res.version)
    assert (node["kind"], node["reviewer"], node["decision"]) == ("review", "Ada", "approved")
    assert node["parents"] == [f"{res.uri}@{res.version}"] and node["flow_run"]["flow"] == "review-dataset"
    assert node["content_hash"] == res.content_hash and len(node["shown"]) == 4 and flagged in node["shown"]
    assert lance.dataset(res.uri).tags.list()["reviewed"]["version"] == res.version
    rows = lance.dataset(lance_io.flags_uri(res.uri)).to_table().to_pylist()
    assert [(r["sample_id"], r["version"], r["reason"], r["reviewer"]) for r in rows] == [
        (flagged, res.version, "square off the grid", "Ada")]
    assert rows[0]["decided_at"] == node["decided_at"]
    assert "review approved by Ada" in lineage.render(lineage.walk(res.uri))
    md = card.render_card(res.uri)
    assert "- **approved** by Ada at" in md and "1 sample(s) flagged" in md and "@reviewed" in md

    # training pins the reviewed version through the tag, also after the dataset moves on
    assert pin([f"{res.uri}@reviewed"]) == [f"{res.uri}@{res.version}"]
    newer = _toy(tmp_path / "toy.lance", num=26)
    assert newer.version == res.version + 1
    assert pin([f"{res.uri}@reviewed"]) == [f"{res.uri}@{res.version}"]
    assert lance_io.open_dataset(f"{res.uri}@reviewed").version == res.version


def test_review_from_the_terminal_takes_the_same_path(prefect_harness, ray_local, tmp_path, toy_registered):
    from flows.cli import app
    from training.index import pin

    res = _toy(tmp_path / "toy.lance", num=14)
    sid = lance.dataset(res.uri).to_table(columns=["sample_id"], limit=1).column("sample_id")[0].as_py()
    runner = CliRunner()
    for bad, message in ([["--approve"], "--reviewer NAME is required"],
                         [["--approve", "--reviewer", "Bo", "--flag", "no-reason"], "write SAMPLE_ID=REASON"],
                         [["--reviewer", "Bo"], "go with --approve or --reject"],
                         [["--approve", "--reviewer", "Bo", "--flag", "nope=x"], "not sample ids of"]):
        out = runner.invoke(app, ["review", res.uri, *bad])
        assert out.exit_code == 2 and message in out.output, out.output
    assert reviews.reviews_of(res.uri) == [] and not lance_io.exists(lance_io.flags_uri(res.uri))  # nothing written

    ok = runner.invoke(app, ["review", res.uri, "--approve", "--reviewer", "Bo", "--flag", f"{sid}=blurry edge"])
    assert ok.exit_code == 0, ok.output
    assert pin([f"{res.uri}@reviewed"]) == [f"{res.uri}@{res.version}"]
    assert [f["sample_id"] for f in reviews.flagged(res.uri, res.version)] == [sid]
    # rejecting the version the tag names removes the tag: training can no longer pin it
    no = runner.invoke(app, ["review", f"{res.uri}@{res.version}", "--reject", "--reviewer", "Cy",
                             "--comment", "labels wrong"])
    assert no.exit_code == 0, no.output
    assert "reviewed" not in lance.dataset(res.uri).tags.list()
    with pytest.raises(FileNotFoundError, match="has no tag 'reviewed'"):
        pin([f"{res.uri}@reviewed"])
    decisions = [(r["reviewer"], r["decision"], r["tag"]["action"]) for r in reviews.reviews_of(res.uri, res.version)]
    assert decisions == [("Bo", "approved", "created"), ("Cy", "rejected", "removed")]


def test_review_flow_is_deployable_with_its_form():
    from flows.review import review_flow

    from prefect.utilities.callables import parameter_schema

    deployment = review_flow.to_deployment(name="review")
    assert deployment.entrypoint.endswith("flows/review.py:review_flow")
    props = parameter_schema(review_flow).model_dump()["properties"]
    assert {"dataset", "sample_size", "seed", "timeout_hours", "decision"} <= set(props)
    assert "URI" in props["dataset"]["description"]


def test_recorded_reviews_check_their_input_and_move_the_tag(ray_local, tmp_path):
    res = _toy(tmp_path / "toy.lance", num=10)
    ref = f"{res.uri}@{res.version}"
    sid = lance.dataset(res.uri).to_table(columns=["sample_id"], limit=1).column("sample_id")[0].as_py()
    for kwargs, message in ([{"decision": "maybe", "reviewer": "A"}, "decision must be one of"],
                            [{"decision": "approve", "reviewer": "  "}, "reviewer name is required"],
                            [{"decision": "approve", "reviewer": "A", "flags": [reviews.Flag(sid, "")]}, "reason for"],
                            [{"decision": "approve", "reviewer": "A", "flags": [reviews.Flag(sid, "x")] * 2},
                             "flagged twice"],
                            [{"decision": "approve", "reviewer": "A" * 201}, "at most 200"]):
        with pytest.raises(ValueError, match=message):
            reviews.record_review(ref, **kwargs)
    assert reviews.reviews_of(res.uri) == [] and "reviewed" not in lance.dataset(res.uri).tags.list()
    assert reviews.record_review(ref, decision="reject", reviewer="A")["tag"]["action"] == "untouched"
    assert reviews.record_review(ref, decision="approve", reviewer="A")["tag"]["action"] == "created"
    newer = _toy(tmp_path / "toy.lance", num=12)
    moved = reviews.record_review(f"{newer.uri}@{newer.version}", decision="approve", reviewer="B",
                                  flags=[reviews.Flag(sid, "blurry")])
    assert moved["tag"] == {"name": "reviewed", "action": "moved", "before": res.version, "after": newer.version}
    assert lance_io.resolve_ref(f"{res.uri}@reviewed") == (res.uri, newer.version)
    # a flag counts for its version only
    assert reviews.flagged(res.uri, res.version) == [] and len(reviews.flagged(res.uri, newer.version)) == 1
    assert reviews.record_review(ref, decision="reject", reviewer="C")["tag"]["action"] == "untouched"  # not tagged
