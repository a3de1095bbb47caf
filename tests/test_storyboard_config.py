"""The storyboard config: one declaration for both sources, validated on construction, and the
scorer specs it shares with multiview (`datagen.scoring.specs`)."""

from __future__ import annotations

import pytest

from datagen import products
from datagen.scoring import specs
from datagen.storyboard.config import StoryboardConfig
from datagen.storyboard.product import loads_models

try:
    from tests.test_video_config import numeric_params_without_bounds
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from test_video_config import numeric_params_without_bounds


def test_every_numeric_parameter_is_bounded_and_explained():
    assert numeric_params_without_bounds(StoryboardConfig) == []
    assert all(p.help for p in StoryboardConfig.params())
    assert {p.name: p.flag for p in StoryboardConfig.params()}["sample_fps"] == "--fps"
    assert products.get("storyboard").config is StoryboardConfig


@pytest.mark.parametrize("values, message", [
    ({}, "exactly one of --videos DIR or --generator SPEC"),
    ({"videos": "v", "generator": "http://127.0.0.1:9/x"}, "exactly one"),
    ({"generator": "diffusers:"}, "use diffusers:/path/to/pipeline"),
    ({"videos": "v", "scorers": "sharpness,nope"}, "unknown scorer 'nope'"),
    ({"videos": "v", "scorers": ["vlm"]}, "needs a local model path"),
    ({"videos": "v", "sample_fps": 60}, "sample_fps must be <= 30"),
    ({"videos": "v", "min_panels": 3, "max_panels": 2}, "min_panels (3) must be <= max_panels (2)"),
    ({"videos": "v", "image_format": "webp"}, "image_format: 'webp' is not one of"),
    ({"generator": "http://127.0.0.1:9/x", "width": 8}, "width must be >= 16"),
    ({"generator": "http://127.0.0.1:9/x", "num": 0}, "num must be >= 1"),
])
def test_bad_values_are_refused_on_construction(values, message):
    with pytest.raises(ValueError) as err:
        StoryboardConfig.from_dict(values)
    assert message in str(err.value)


def test_sources_stay_out_of_the_content_key_and_setup_follows_the_models():
    a = StoryboardConfig(videos="/site-a/films")
    assert a.content() == StoryboardConfig(videos="/elsewhere/films").content()
    assert a.scorers == ("consistency", "diversity") and StoryboardConfig(videos="v", scorers="sharpness").scorers == (
        "sharpness",)
    assert not loads_models(a)  # face cascade + classical scorers: stateless tasks
    assert loads_models(a.replace(scorers=("clip=/models/clip",)))
    assert loads_models(a.replace(nsfw="/models/nsfw"))
    assert loads_models(StoryboardConfig(generator="diffusers:/models/sd"))
    assert not loads_models(StoryboardConfig(generator="http://127.0.0.1:9/x"))


def test_scorer_specs_parse_check_and_build(tmp_path):
    assert specs.parse("sharpness, clip=/m/clip,") == [("sharpness", None), ("clip", "/m/clip")]
    assert specs.parse(["diversity"]) == [("diversity", None)] and specs.parse(None) == []
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        specs.check_weights([("clip", str(tmp_path))])
    made = specs.build(specs.parse("consistency,diversity"))
    assert [s.tag for s in made] == ["consistency@1", "diversity@1"]
