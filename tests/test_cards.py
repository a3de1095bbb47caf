"""Dataset cards as reviewers see them: one artifact history per dataset location, published from
the CLI inside a flow run, laid out so nothing runs off the card in the UI (the UI never wraps a
table cell), one thumbnail grid per task, a scores section, and the lineage picture."""

from __future__ import annotations

import re
import warnings

import cloudpickle
import numpy as np
import pytest
from PIL import Image

import tests.toy_product as toy
from compute import harness
from datagen.report import contact_sheet, markdown
from datagen.schema import Picture, Sample

cloudpickle.register_pickle_by_value(toy)


def _toy(out, num=12, seed=1, size=32):
    return harness.execute(harness.prepare(toy.PRODUCT, toy.ToyConfig(num=num, size=size), out=str(out), seed=seed,
                                           shard_size=6), workers=1, progress=False)


@pytest.fixture(scope="module")
def toy_registered():
    from datagen import products

    if "toy" not in products.names():
        products.register(toy.PRODUCT)


def test_keys_differ_per_location_and_stay_across_versions(tmp_path):
    from flows import card

    a, b = tmp_path / "a" / "collage.lance", tmp_path / "b" / "collage.lance"
    assert card.artifact_key(str(a)) != card.artifact_key(str(b))
    assert card.artifact_key(str(a)) == card.artifact_key(f"{a}@3") == card.artifact_key(f"{a}/")
    assert re.fullmatch(r"dataset-collage-[0-9a-f]{8}", card.artifact_key(str(a)))
    assert card.artifact_key("s3://bucket/x/collage.lance") != card.artifact_key("s3://other/x/collage.lance")


def test_two_datasets_of_one_name_get_two_cards_published_from_a_flow_run(prefect_harness, ray_local, tmp_path,
                                                                         toy_registered):
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client
    from typer.testing import CliRunner

    from flows.cli import app

    first, second = _toy(tmp_path / "a" / "toy.lance", num=8), _toy(tmp_path / "b" / "toy.lance", num=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = []
        for res in (first, second):
            out = CliRunner().invoke(app, ["card", res.uri, "--publish"])
            assert out.exit_code == 0, out.output
            keys.append(re.search(r"published as Prefect artifact '([a-z0-9-]+)'", out.output).group(1))
    assert not [w for w in caught if "deprecat" in str(w.message).lower()], [str(w.message) for w in caught]
    assert keys[0] != keys[1]
    with get_client(sync_client=True) as client:
        for key, res in zip(keys, (first, second)):
            art = Artifact.get(key)
            assert art.data.startswith(f"# Dataset `toy` @ version 1 in {markdown.breakable(res.uri)}")
            assert art.description and res.uri in art.description  # "No description" no more
            run = client.read_flow_run(art.flow_run_id)  # the flow-run link the UI shows
            assert run.name and client.read_flow(run.flow_id).name == "publish-dataset-card"
    # a new version of the first dataset: the same key, so the UI keeps one history per location
    again = _toy(tmp_path / "a" / "toy.lance", num=9)
    assert again.version == 2
    out = CliRunner().invoke(app, ["card", again.uri, "--publish"])
    assert out.exit_code == 0 and f"'{keys[0]}'" in out.output
    assert "@ version 2 in" in Artifact.get(keys[0]).data


def test_card_layout_fits_the_ui(ray_local, tmp_path, toy_registered):
    from flows import card

    res = _toy(tmp_path / "a_folder_with_a_rather_long_name" / "toy.lance", num=12)
    md = card.render_card(res.uri)
    body = re.sub(r"```.*?```", "", md, flags=re.S)  # fenced code scrolls in the UI; everything else must wrap
    for line in body.splitlines():
        if line.startswith("|"):  # Prefect's UI never wraps a table cell: every cell stays short
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
            assert all(len(c) <= 40 for c in cells), line
        for token in re.findall(r"`([^`]+)`", line):  # nor an inline code span
            assert len(token) <= 60, line
        assert "<" not in line.replace("<wbr>", "").replace("&lt;", "") or line.startswith("!["), line
    assert "## Scores" in md and "No scores recorded" in md  # a section even when the product writes none
    assert "### `edit.add`" in md and md.count("![edit.add examples](data:image/jpeg;base64,") == 1
    assert "- `--size` = `32` (default `32`): Canvas side in pixels." in md
    assert "![lineage](data:image/png;base64," in md and "Not reviewed yet" in md
    assert "- `inputs`: list" in md  # the schema is a list: its long types wrap
    assert len(md.encode()) < card.CARD_BUDGET_BYTES
    plain = card.strip_images(md)
    assert "base64" not in plain and "<wbr>" not in plain and res.uri in plain


def _sample(n_inputs: int) -> Sample:
    rng = np.random.default_rng(n_inputs)
    pic = lambda role: Picture(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8), role)  # noqa: E731
    return Sample("t2i.text" if not n_inputs else "edit.add", "Draw <image 1>.", [pic("source")] * n_inputs,
                  [pic("target")])


def test_contact_sheet_draws_no_arrow_from_nothing_and_captions_under_rows():
    tile = 64
    assert contact_sheet.sample_strip(_sample(0), tile).shape[1] == tile  # text-to-image: the output alone
    assert contact_sheet.sample_strip(_sample(1), tile).shape[1] == 2 * tile + tile // 3  # input, arrow, output
    sheet = contact_sheet.render([_sample(1)], tile=tile, captions=["a caption"], min_tiles=4)
    assert sheet.shape[1] == 4 * tile
    below = sheet[tile:]  # the caption band is under the tiles
    assert (below < 128).any() and sheet[:tile, 2 * tile + tile // 3:].min() > 200  # text below, blank right
    Image.fromarray(sheet)  # a valid RGB image


def test_markdown_helpers_keep_data_text_inert():
    assert markdown.escape("a|b_c*[x](y)<img>") == "a\\|b\\_c\\*\\[x\\](y)&lt;img&gt;"
    assert markdown.code("a<b") == "`a<b`" and markdown.code("x`y") == "``x`y``"
    assert markdown.breakable("/a_b/c") == "/<wbr>a\\_b/<wbr>c"
    row = markdown.table(["k"], [[markdown.code("x|y")], [markdown.escape("p|q")]], raw=True).splitlines()
    assert row[2] == "| `x\\|y` |" and row[3] == "| p\\|q |"  # pipes escaped once, inside code too
