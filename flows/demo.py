"""`make demo`: every data product end to end on the embedded defaults.

Local Ray, an ephemeral Prefect server (its database under $PREFECT_HOME, so `make ui`
shows the runs and cards afterwards), Lance datasets under ./data, and a contact sheet
PNG per dataset for people to look at.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow

from datagen.report import contact_sheet
from datagen.store import lance_io
from flows import card, demo_plan

DATA = Path(os.environ.get("UNIMONTAGE_DATA", "data"))


def write_sheet(uri: str, per_task: int = 2, tile: int = 160) -> Path:
    ds = lance_io.open_dataset(uri)
    examples = card.examples_per_task(ds, per_task=per_task)
    path = DATA / f"{lance_io.dataset_name(uri)}_contact.png"
    contact_sheet.save_png(contact_sheet.render(examples, tile=tile), str(path))
    return path


@flow(name="unimontage-demo")
def demo_flow(workers: int = 2) -> dict:
    """Every data product on its embedded source, then a short training run on them."""
    from flows.datasets import flow_for
    from flows.train_flow import train_flow

    DATA.mkdir(parents=True, exist_ok=True)
    demo_plan.make_sources(DATA / "sources")
    results = {}
    plan = demo_plan.product_params(DATA)
    for product, dataset in demo_plan.DATASETS.items():
        results[dataset] = flow_for(product)(**plan[product], workers=workers)
        if product == "collage":  # the conditions read the version made just now (their lineage points at it)
            plan = demo_plan.product_params(DATA, collage_ref=f"{results[dataset]['uri']}@{results[dataset]['version']}")
    refs = [f"{results[k]['uri']}@{results[k]['version']}" for k in demo_plan.TRAIN_ON]
    training = train_flow(config="demo", datasets=refs, out=str(DATA / "runs"))
    return {"datasets": results, "training": training}


def main() -> None:
    t0 = time.perf_counter()
    out = demo_flow()
    results = out["datasets"]
    sheets = {name: str(write_sheet(r["uri"])) for name, r in results.items()}
    print("\n=== UniMontage demo finished in %.0f s ===" % (time.perf_counter() - t0))
    for name, r in results.items():
        print(f"- {name}: {r['uri']}@{r['version']}  {r['rows']} samples, {r['rejects']} rejects "
              f"(content {r['content_hash'][:16]})")
        print(f"    contact sheet: {sheets[name]}   card: Prefect artifact '{r['card']}'")
        print(f"    lineage:       .venv/bin/unimontage lineage {r['uri']}@{r['version']}")
    tr = out["training"]
    print(f"- training run {tr['name']}: step {tr['step']}, checkpoint {tr['checkpoint']}")
    print(f"    card: Prefect artifact '{tr['card']}'   lineage: .venv/bin/unimontage lineage {tr['checkpoint']}")
    (DATA / "demo_summary.json").write_text(json.dumps(out, indent=1, default=str))
    print("Browse runs and cards: make ui  (then open http://127.0.0.1:4200/artifacts)")


if __name__ == "__main__":
    main()
