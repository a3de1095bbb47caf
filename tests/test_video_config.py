"""The video-pairs config: every parameter declared once, bounded, and coerced from plain data
(what the CLI, a flow, a deployment form and a lineage record hand it)."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from datagen import products
from datagen.params import ProductConfig
from datagen.video.config import VideoPairsConfig
from datagen.video.filters import MotionRule, QualityRule
from datagen.video.probe import Limits
from datagen.video.shots import CutRule


def numeric_params_without_bounds(cls: type[ProductConfig]) -> list[str]:
    """Fields holding numbers (plain, optional or tuples of them) that lack a min or a max."""
    missing = []
    for p in cls.params():
        tp = p.type
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(tp):
            missing += [f"{p.name}.{m}" for m in numeric_params_without_bounds(tp)]
        elif tp in (int, float) and (p.min is None or p.max is None):
            missing.append(p.name)
    return missing


def test_every_numeric_parameter_is_bounded_and_explained():
    for cls in (VideoPairsConfig, Limits, QualityRule, MotionRule, CutRule):
        assert numeric_params_without_bounds(cls) == [], cls.__name__
        assert all(p.help for p in cls.params()), cls.__name__


def test_flags_and_what_enters_the_content_key():
    flags = {p.name: p.flag for p in VideoPairsConfig.params()}
    assert (flags["sample_fps"], flags["optical_flow"], flags["min_motion_px"]) == ("--fps", "--flow", "--min-motion")
    cfg = VideoPairsConfig(videos="/anywhere")
    assert "videos" not in cfg.content()  # where the videos sit is not content; their hashes are
    assert cfg.content()["motion"] == {"min_norm": 0.004, "boost_from": 0.02, "boost_to": 0.1, "max_weight": 3.0}
    assert products.get("video-pairs").config is VideoPairsConfig


@pytest.mark.parametrize("changes, message", [
    ({"sample_fps": 31}, "sample_fps must be <= 30"),
    ({"sample_fps": 0}, "sample_fps must be >= 0.05"),
    ({"gap_range_s": (2.0, 1.0)}, "gap_range_s must be two numbers"),
    ({"gap_range_s": (1.0,)}, "gap_range_s must be two numbers"),
    ({"recrop_scale": (0.5, 1.5)}, "recrop_scale must be <= 1"),
    ({"optical_flow": "lk"}, "optical_flow: 'lk' is not one of"),
    ({"optical_flow": "raft"}, "needs raft_dir"),
    ({"captioner": "vlm"}, "needs vlm_dir"),
    ({"max_store_side": 10}, "max_store_side must be >= 64"),
    ({"limits": {"min_side": 0}}, "min_side must be >= 8"),
    ({"quality": {"dark_level": 300}}, "dark_level must be <= 255"),
    ({"motion": {"boost_from": 0.2, "boost_to": 0.1}}, "boost_to"),
    ({"cut": {"sharpness": 1}}, "unknown parameter(s) sharpness"),
    ({"cut": "strict"}, "want a CutRule or a dict"),
    ({"min_motion": 3}, "unknown parameter(s) min_motion"),
])
def test_bad_values_are_refused_on_construction(changes, message):
    with pytest.raises(ValueError) as err:
        VideoPairsConfig.from_dict({"videos": "v", **changes})
    assert message in str(err.value)


def test_nested_rules_come_from_plain_data_and_round_trip():
    cfg = VideoPairsConfig.from_dict({"videos": "v", "quality": {"min_sharpness": 30}, "gap_range_s": [1, 2],
                                      "max_store_side": None})
    assert cfg.quality == QualityRule(min_sharpness=30.0) and cfg.gap_range_s == (1.0, 2.0)
    assert cfg.max_store_side is None
    assert VideoPairsConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(sample_fps=4).sample_fps == 4.0 and cfg.replace(sample_fps=4).quality == cfg.quality
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.sample_fps = 3.0  # type: ignore[misc]
