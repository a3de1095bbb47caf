"""`make bench`: run every benchmark, then paste their markdown tables into the README.

Each benchmark is a module with `main() -> str` returning its markdown section (and
writing its JSON under benchmarks/results/). A failing benchmark is reported, not hidden.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS = ["collage", "video_motion", "conditions", "scorers", "datasets_throughput", "exact_paths", "same_bytes",
              "learn_edit", "training_perf", "scale", "chaos"]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main(names: list[str]) -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections, failed = [], []
    for name in names or BENCHMARKS:
        if not (ROOT / "benchmarks" / f"{name}.py").exists():
            continue
        t0 = time.perf_counter()
        print(f"== benchmark {name}", flush=True)
        try:
            md = importlib.import_module(f"benchmarks.{name}").main()
            (RESULTS / f"{name}.md").write_text(md)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        print(f"== {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    for name in BENCHMARKS:  # the README shows the latest table of every benchmark
        f = RESULTS / f"{name}.md"
        if f.exists():  # one heading level for every benchmark, whatever the module wrote
            sections.append(re.sub(r"^#{1,6} ", "### ", f.read_text().strip(), count=1))
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        body = "\n\n".join(sections)
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{body}\n{END}", text, flags=re.S)
        readme.write_text(text)
    if failed:
        print("failed benchmarks:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
