"""The lineage graph as a picture: PNG and SVG drawn with matplotlib, or Graphviz DOT text.

Top to bottom: sources -> flow runs -> datasets@version (-> reviews) -> flow run ->
training run -> checkpoints, each box with its content hash, the node a card is about
highlighted. The layout is computed here (layers by longest path, order by the parents'
mean position) so no Graphviz binary is needed; `to_dot` is for people who have one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from datagen.store.lineage import GraphNode, LineageGraph, graph

# (fill, edge) per node kind; reviews are coloured by their decision.
COLOURS = {
    "source": ("#eeeeee", "#7a7a7a"),
    "flow_run": ("#efe6fb", "#7a55c7"),
    "dataset": ("#e3edfc", "#3a6fd8"),
    "review": ("#e2f5e6", "#2e9a48"),
    "review_rejected": ("#fbe3e3", "#c0392b"),
    "training_run": ("#fdf0dc", "#d98a1c"),
    "checkpoint": ("#f6e9df", "#9a5b2e"),
    "missing": ("#ffffff", "#c0392b"),
}
KIND_NAMES = {"source": "source", "flow_run": "flow run", "dataset": "dataset@version", "review": "review",
              "training_run": "training run", "checkpoint": "checkpoint"}
FOCUS = "#ffc928"
FONT_PT, LINE_IN, CHAR_IN = 7.5, 0.15, 0.058  # DejaVu Sans at 7.5 pt: ~0.058 in per character
MAX_CHARS = 44
GAP_X, GAP_Y, PAD = 0.28, 0.42, 0.07


def _clip(text: str, n: int = MAX_CHARS) -> str:
    """Long paths keep their tail (the distinctive part): '...runs/train-x/checkpoint_60'."""
    return text if len(text) <= n else "..." + text[-(n - 3):]


def _colours(node: GraphNode) -> tuple[str, str]:
    if node.kind == "review" and "rejected" in node.title:
        return COLOURS["review_rejected"]
    return COLOURS.get(node.kind, COLOURS["missing"])


@dataclass
class Box:
    node: GraphNode
    x: float  # centre, inches from the left
    y: float  # top, inches from the top
    w: float
    h: float


def _layers(g: LineageGraph) -> list[list[str]]:
    """Layer = longest path from a root; nodes without parents sit just above their first child."""
    parents: dict[str, list[str]] = {n: [] for n in g.nodes}
    children: dict[str, list[str]] = {n: [] for n in g.nodes}
    for a, b in g.edges:
        parents[b].append(a)
        children[a].append(b)
    depth: dict[str, int] = {}

    def d(n: str, stack: frozenset = frozenset()) -> int:
        if n not in depth:
            ups = [p for p in parents[n] if p not in stack]  # a cycle (should not exist) cannot hang this
            depth[n] = 1 + max((d(p, stack | {n}) for p in ups), default=-1)
        return depth[n]

    for n in g.nodes:
        d(n)
    for n in g.nodes:
        if not parents[n] and children[n]:
            depth[n] = max(depth[n], min(depth[c] for c in children[n]) - 1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for n in g.nodes:  # insertion order: the walk's order, a stable start for the sweeps
        layers[depth[n]].append(n)
    pos = {n: i for layer in layers for i, n in enumerate(layer)}
    def mean(ns: list[str], n: str) -> tuple[float, str]:
        return (sum(pos[m] for m in ns) / len(ns) if ns else pos[n], n)  # ties: by id (checkpoints by step)

    for _ in range(2):  # barycentre sweeps down then up: fewer crossings
        for layer in layers[1:]:
            layer.sort(key=lambda n: mean(parents[n], n))
            pos.update({n: i for i, n in enumerate(layer)})
        for layer in reversed(layers[:-1]):
            layer.sort(key=lambda n: mean(children[n], n))
            pos.update({n: i for i, n in enumerate(layer)})
    return [layer for layer in layers if layer]


def _key(g: LineageGraph) -> list[tuple[str, str]]:
    """(kind, label) of the legend: the kinds in the picture, then the highlight."""
    kinds = [k for k in KIND_NAMES if any(n.kind == k for n in g.nodes.values())]
    return [(k, KIND_NAMES[k]) for k in kinds] + [("focus", "this node")]


def layout(g: LineageGraph) -> tuple[list[Box], float, float]:
    """Boxes with positions, and the picture's width and height in inches."""
    texts = {n: [node.title] + [_clip(line) for line in node.lines] for n, node in g.nodes.items()}
    w = min(MAX_CHARS * CHAR_IN, max(1.5, max(len(t) for ts in texts.values() for t in ts) * CHAR_IN)) + 2 * PAD
    layers = _layers(g)
    key = sum(0.36 + len(label) * CHAR_IN for _, label in _key(g)) + GAP_X
    width = max(key, max(len(layer) for layer in layers) * (w + GAP_X) + GAP_X)
    boxes, y = [], GAP_X
    for layer in layers:
        h = max(len(texts[n]) for n in layer) * LINE_IN + 2 * PAD
        x0 = (width - len(layer) * (w + GAP_X) + GAP_X) / 2 + w / 2
        for i, n in enumerate(layer):
            boxes.append(Box(g.nodes[n], x0 + i * (w + GAP_X), y, w, len(texts[n]) * LINE_IN + 2 * PAD))
        y += h + GAP_Y
    return boxes, width, y - GAP_Y + 0.45  # room for the key


def _figure(g: LineageGraph):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes, width, height = layout(g)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards, like the layout
    ax.axis("off")
    at = {b.node.id: b for b in boxes}
    for a, b in g.edges:
        pa, pb = at[a], at[b]
        halo = 0.05 if b == g.focus else 0.0  # the arrow ends on the highlight, not under it
        ax.add_patch(FancyArrowPatch((pa.x, pa.y + pa.h), (pb.x, pb.y - halo), arrowstyle="-|>", mutation_scale=9,
                                     lw=0.9, color="#555555", shrinkA=1, shrinkB=1, zorder=1))
    for b in boxes:
        fill, edge = _colours(b.node)
        focus = b.node.id == g.focus
        if focus:
            ax.add_patch(FancyBboxPatch((b.x - b.w / 2 - 0.05, b.y - 0.05), b.w + 0.1, b.h + 0.1,
                                        boxstyle="round,pad=0,rounding_size=0.08", fc=FOCUS, ec="none", zorder=2))
        ax.add_patch(FancyBboxPatch((b.x - b.w / 2, b.y), b.w, b.h, boxstyle="round,pad=0,rounding_size=0.06",
                                    fc=fill, ec="#111111" if focus else edge, lw=1.6 if focus else 0.9,
                                    ls="--" if b.node.kind == "missing" else "-", zorder=3))
        lines = [b.node.title] + [_clip(line) for line in b.node.lines]
        for i, line in enumerate(lines):
            ax.text(b.x - b.w / 2 + PAD, b.y + PAD + (i + 0.5) * LINE_IN, line, va="center", ha="left",
                    fontsize=FONT_PT + (0.5 if i == 0 else 0), fontweight="bold" if i == 0 else "normal",
                    color="#111111" if i == 0 else "#333333", zorder=4)
    x = GAP_X
    for k, label in _key(g):
        fill, edge = (FOCUS, "#111111") if k == "focus" else COLOURS[k]
        ax.add_patch(FancyBboxPatch((x, height - 0.3), 0.16, 0.14, boxstyle="round,pad=0,rounding_size=0.03",
                                    fc=fill, ec=edge, lw=0.8))
        ax.text(x + 0.22, height - 0.23, label, va="center", ha="left", fontsize=FONT_PT, color="#333333")
        x += 0.36 + len(label) * CHAR_IN
    return fig


def to_png(g: LineageGraph, dpi: int = 110) -> bytes:
    import matplotlib.pyplot as plt

    fig = _figure(g)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def png_of(ref: str) -> bytes:
    """The picture every card embeds: the graph around `ref` (a dataset `URI@VERSION`, a training
    run or a checkpoint folder), that node highlighted. Training imports this, not the flows."""
    return to_png(graph(ref))


def to_svg(g: LineageGraph) -> str:
    import matplotlib
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "unimontage"}):  # text stays text
        fig = _figure(g)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", facecolor="white", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: LineageGraph) -> str:
    """Graphviz source: `dot -Tsvg` draws it where Graphviz is installed."""
    out = ["digraph lineage {", "  rankdir=TB;",
           '  node [shape=box, style="rounded,filled", fontname="DejaVu Sans", fontsize=10];']
    for n in g.nodes.values():
        fill, edge = _colours(n)
        label = "\\n".join(_dot_str(t)[1:-1] for t in [n.title] + n.lines)
        extra = ", penwidth=3, color=\"#111111\"" if n.id == g.focus else f', color="{edge}"'
        out.append(f'  {_dot_str(n.id)} [label="{label}", fillcolor="{fill}"{extra}];')
    out += [f"  {_dot_str(a)} -> {_dot_str(b)};" for a, b in g.edges]
    out.append("}")
    return "\n".join(out) + "\n"
