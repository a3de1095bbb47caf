"""kill -9 at a random moment and two writers at once, on real runs in their own processes:
every re-run completes to the uninterrupted run's content hash, with no input lost or
duplicated. (`make chaos` runs many more trials and reports the figures.)"""

from __future__ import annotations

from benchmarks import chaos


def test_killed_runs_resume_to_the_same_bytes_and_concurrent_writers_do_not_mix(tmp_path):
    report = chaos.trials(tmp_path, n=1, num=24, seed=1)
    for trial in report["kills"]:
        assert trial["same_hash"] and trial["lost"] == 0 and trial["duplicated"] == 0, trial
    conc = report["concurrent"]
    assert conc["committed"] >= 1 and conc["failed_clearly"], conc
    assert conc["same_hash"] and conc["lost"] == 0 and conc["duplicated"] == 0, conc
