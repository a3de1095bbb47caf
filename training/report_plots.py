"""The training card's plots: the loss curve, per-task loss as small multiples (one panel per
task family, shared axes, legends under the panels, never over the data), and the planned
task shares over steps. Each returns PNG bytes (or None when there is nothing to draw).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

DPI = 90


def family(task: str) -> str:
    """`edit.add` -> `edit`: tasks of one family share a panel of the small multiples."""
    return task.split(".", 1)[0]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08, facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def _stage_lines(ax, stages: list[dict[str, Any]], *, names: bool = True) -> None:
    """Dashed lines where each stage after the first starts; its name at the top when `names`."""
    for st in stages[1:]:
        ax.axvline(st["start"], color="#444444", lw=0.9, ls="--", zorder=4)
    if names:
        for st in stages:
            ax.text(st["start"], 1.0, f" {st['name']}", transform=ax.get_xaxis_transform(), fontsize=6.5, va="top",
                    color="#222222", zorder=5, bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.5})


def _running_mean(y: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(y, np.ones(k) / k, mode="valid")


def loss_curve_png(history: list[dict[str, Any]], stages: list[dict[str, Any]] | None = None) -> bytes | None:
    """Loss per step (thin), its running mean (thick), the LR on a second axis; stage starts marked."""
    if not history:
        return None
    plt = _plt()
    steps = np.array([r["step"] for r in history])
    loss = np.array([r["loss"] for r in history])
    k = max(1, len(loss) // 20)
    fig, ax = plt.subplots(figsize=(7.6, 2.4))
    ax.plot(steps, loss, lw=0.6, color="#9bb5e8", label="loss per step")
    ax.plot(steps[k - 1:], _running_mean(loss, k), lw=1.8, color="#2452b5", label=f"running mean of {k}")
    ax.set_title("loss (all tasks)", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    lr = [r.get("lr") for r in history]
    if all(v is not None for v in lr):
        ax2 = ax.twinx()
        ax2.plot(steps, lr, lw=0.9, color="#d98a1c", ls=":", label="learning rate")
        ax2.set_ylim(0, max(lr) * 1.15 or 1)
        ax2.tick_params(labelsize=7, colors="#b06a0c")
        ax2.set_ylabel("LR", fontsize=7, color="#b06a0c")
    _stage_lines(ax, stages or [])
    fig.tight_layout()
    fig.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0.02), frameon=False)
    return _png(fig)


def task_loss_png(history: list[dict[str, Any]], stages: list[dict[str, Any]] | None = None,
                  cols: int = 3) -> bytes | None:
    """Small multiples: one panel per task family, every panel on the same axes; each task's
    loss at the steps it was drawn (dots) and its running mean (line); the loss over all tasks
    in light grey behind, for reference. The legend of a panel sits under it."""
    tasks = sorted({t for r in history for t in r.get("tasks", {})})
    if not tasks:
        return None
    plt = _plt()
    families: dict[str, list[str]] = {}
    for t in tasks:
        families.setdefault(family(t), []).append(t)
    names = sorted(families)
    cols = min(cols, len(names))
    rows = -(-len(names) // cols)
    legend_rows = max(-(-len(v) // 2) for v in families.values())
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, (1.75 + 0.15 * legend_rows) * rows + 0.2),
                             sharex=True, sharey=True, squeeze=False)
    steps = np.array([r["step"] for r in history])
    overall = np.array([r["loss"] for r in history])
    values = [v for r in history for v in r.get("tasks", {}).values()] + list(overall)
    lo, hi = float(np.min(values)), float(np.max(values))
    colours = ["#2452b5", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#5c940d"]
    for ax, name in zip(axes.flat, names):
        ax.plot(steps, overall, lw=0.8, color="#cccccc", zorder=1)
        for i, task in enumerate(families[name]):
            pts = [(r["step"], r["tasks"][task]) for r in history if task in r.get("tasks", {})]
            xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            colour = colours[i % len(colours)]
            ax.plot(xs, ys, ".", ms=2.5, color=colour, alpha=0.5, zorder=2)
            kk = max(1, len(ys) // 8)
            ax.plot(xs[kk - 1:], _running_mean(ys, kk), lw=1.3, color=colour, zorder=3,
                    label=task.split(".", 1)[1] if "." in task else task)
        single = len(families[name]) == 1
        ax.set_title(families[name][0] if single else name, fontsize=8, pad=2)
        ax.tick_params(labelsize=6.5, labelbottom=True)
        ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        _stage_lines(ax, stages or [], names=False)
        if not single:  # a one-task panel is named by its title
            ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False,
                      handlelength=1.2, columnspacing=0.8, borderaxespad=0.2)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("loss per task family (same axes; grey: all tasks; dots: steps that drew the task)", fontsize=8)
    fig.tight_layout(h_pad=0.4, w_pad=0.6)
    return _png(fig)


def share_plot_png(schedule: dict[str, Any]) -> bytes | None:
    """The planned share of each task over the run's steps (stacked, tasks of a family in shades
    of one hue, in family order); the legend beside the plot; stage starts marked."""
    if not schedule or not schedule.get("steps"):
        return None
    plt = _plt()
    tasks = list(schedule["tasks"])
    order = sorted(range(len(tasks)), key=lambda i: (family(tasks[i]), tasks[i]))
    stop = max([st.get("stop", 0) for st in schedule.get("stages") or []] + [schedule["steps"][-1] + 1])
    steps = np.array(list(schedule["steps"]) + [stop])  # the last planned share holds to the end of the run
    shares = np.array(list(schedule["shares"]) + [schedule["shares"][-1]]).T[order]  # (tasks, points)
    tasks = [tasks[i] for i in order]
    names = list(dict.fromkeys(family(t) for t in tasks))
    hues = plt.get_cmap("tab10")
    colours = []
    for t in tasks:
        members = [u for u in tasks if family(u) == family(t)]
        base = np.array(hues(names.index(family(t)) % 10)[:3])
        light = members.index(t) / max(1, len(members)) * 0.55  # shades towards white
        colours.append(tuple(base + (1 - base) * light))
    n = len(tasks)
    cols = 1 + (n - 1) // 14  # a legend column per 14 tasks, tall enough for them
    fig, ax = plt.subplots(figsize=(6.6, max(2.4, 0.5 + 0.16 * min(n, 14))))
    ax.stackplot(steps, shares, labels=tasks, colors=colours, step="post", edgecolor="white", linewidth=0.3)
    ax.set_ylim(0, 1)
    ax.set_xlim(steps[0], stop)
    ax.set_title("task share of samples (planned)", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=6, ncol=cols, loc="center left", bbox_to_anchor=(1.01, 0.5),
              frameon=False)
    _stage_lines(ax, schedule.get("stages") or [])
    fig.tight_layout()
    return _png(fig)
