"""Which rows a stage trains on: the `where` filter on scores, a `@reviewed` tag, the review's
flags table, on real Lance versions (the review tool's contract, written here by hand)."""

from __future__ import annotations

import lance
import numpy as np
import pyarrow as pa
import pytest

from datagen.schema import Picture, Sample
from datagen.store import lance_io
from tests.test_training_data import GEO, write
from training.config import TrainConfig
from training.index import build_index, pin, read_shapes
from training.selection import Clause, flagged_ids, parse_where, where_reasons


def scored(n: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pic = Picture(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "target")
        scores = {} if i % 4 == 3 else {"vlm_rating": float(1 + i % 5), "motion_px": float(i)}
        out.append(Sample("t2i.photo", f"photo {i}", [], [pic], scores=scores))
    return out


@pytest.fixture(scope="module")
def reviewed(ray_local, tmp_path_factory):
    """v1 (12 rows) tagged `reviewed`, then v2 (8 other rows); flags for both versions."""
    root = tmp_path_factory.mktemp("review")
    uri = str(root / "photos.lance")
    v1 = write(uri, scored(12, 0))
    write(uri, scored(8, 1))
    lance.dataset(uri).tags.create("reviewed", 1)
    ids = lance_io.open_dataset(v1).to_table(columns=["sample_id"]).column("sample_id").to_pylist()
    flags = pa.table({"sample_id": [ids[0], ids[5], ids[1]], "version": pa.array([1, 1, 2], pa.int64()),
                      "reason": ["blurry", "wrong subject", "flagged in v2 only"]})
    lance.write_dataset(flags, lance_io.flags_uri(uri))
    return {"uri": uri, "v1": v1, "ids": ids, "root": root}


def test_where_parses_clauses_and_refuses_code():
    assert parse_where("") == []
    assert parse_where("vlm_rating >= 4 and motion_px<1.5e1") == [Clause("vlm_rating", ">=", 4.0),
                                                                    Clause("motion_px", "<", 15.0)]
    for bad in ("vlm_rating >= four", "__import__('os') > 1", "a >= 1 or b < 2", "a => 1"):
        with pytest.raises(ValueError, match="where: cannot read"):
            parse_where(bad)
    reasons = where_reasons([{"q": 5.0}, [("q", 1.0)], {}, {"q": float("nan")}], parse_where("q >= 3"))
    assert reasons.tolist() == ["", "where:q >= 3", "no_score:q", "where:q >= 3"]
    assert where_reasons([{}], parse_where("q >= 3"), missing="keep").tolist() == [""]


def test_a_reviewed_tag_pins_the_version_it_names(reviewed):
    uri = lance_io.normalise_uri(reviewed["uri"])
    assert lance_io.split_version(f"{uri}@reviewed") == (uri, "reviewed")
    assert lance_io.split_version(f"{uri}@7") == (uri, 7)
    assert lance_io.pin_ref(f"{uri}@reviewed") == f"{uri}@1"
    assert lance_io.resolve_ref(f"{uri}@reviewed") == (uri, 1)
    assert pin([f"{uri}@reviewed"]) == [f"{uri}@1"] and pin([uri]) == [f"{uri}@2"]
    assert lance_io.open_dataset(f"{uri}@reviewed").count_rows() == 12
    with pytest.raises(FileNotFoundError, match="has no tag 'approved'"):
        pin([f"{uri}@approved"])


def test_a_stage_keeps_rows_by_score_and_drops_flagged_ones_for_its_version(reviewed):
    ref = pin([f"{reviewed['uri']}@reviewed"])[0]
    shapes = {ref: read_shapes(ref)}
    base = build_index([ref], TrainConfig(), GEO, shapes)
    assert len(base) == 12 and base.skipped == {}
    # ratings 1 + i % 5 by row, rows 3, 7 and 11 unscored: ">= 4" keeps rows 4 (5), 8 (4) and 9 (5)
    strict = build_index([ref], TrainConfig(where="vlm_rating >= 4"), GEO, shapes)
    keep = [4, 8, 9]
    assert strict.position.tolist() == keep
    assert strict.skipped == {"where:vlm_rating >= 4": 6, "no_score:vlm_rating": 3}
    lenient = build_index([ref], TrainConfig(where="vlm_rating >= 4", where_missing="keep"), GEO, shapes)
    assert lenient.position.tolist() == sorted(keep + [3, 7, 11])
    # flags count for the pinned version only: rows 0 and 5 (v1), not row 1 (flagged for v2)
    assert flagged_ids(ref) == {reviewed["ids"][0], reviewed["ids"][5]}
    clean = build_index([ref], TrainConfig(drop_flagged=True), GEO, shapes)
    assert clean.skipped == {"flagged": 2} and 0 not in clean.position and 5 not in clean.position
    assert 1 in clean.position.tolist()
    both = build_index([ref], TrainConfig(where="vlm_rating >= 4", where_missing="keep", drop_flagged=True), GEO, shapes)
    assert len(both) + sum(both.skipped.values()) == 12  # every row accounted for


def test_no_flags_table_means_nothing_flagged_and_a_broken_one_is_named(reviewed, tmp_path):
    other = write(str(tmp_path / "plain.lance"), scored(3, 2))
    assert flagged_ids(other) == set()
    lance.write_dataset(pa.table({"sample_id": ["x"]}), lance_io.flags_uri(other.split("@")[0]))
    with pytest.raises(ValueError, match="lacks columns"):
        flagged_ids(other)
    with pytest.raises(ValueError, match="pinned version"):
        flagged_ids(reviewed["uri"])
