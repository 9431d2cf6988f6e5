"""Server-side plots: matplotlib (Agg) to inline SVG, imported inside the function (the web process stays light)."""
from __future__ import annotations

import hashlib
import io

_CACHE: dict[str, str] = {}


def leaderboard_bar_svg(*, title: str, entries: list[tuple[str, float, str]]) -> str:
    """Horizontal bars, best on top; measured here in one colour, reported (cited) hatched."""
    key = hashlib.sha256(repr((title, entries)).encode()).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    entries = sorted(entries, key=lambda e: e[1])
    fig = Figure(figsize=(6.4, 0.45 * len(entries) + 1.1))
    ax = fig.subplots()
    colors = ["#2b6cb0" if kind == "measured" else "#cbd5e0" for _, _, kind in entries]
    bars = ax.barh([e[0] for e in entries], [e[1] for e in entries], color=colors, edgecolor="#4a5568")
    for bar, (_, value, kind) in zip(bars, entries):
        if kind != "measured":
            bar.set_hatch("//")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.1f}", va="center", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    ax.legend(handles=[Patch(color="#2b6cb0", label="measured here"), Patch(facecolor="#cbd5e0", hatch="//", label="reported")],
              fontsize=7, loc="lower right")
    ax.margins(x=0.15)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.find("<svg"):]  # inline: drop the XML prolog and doctype
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = svg
    return svg


def cost_scatter_svg(*, title: str, xlabel: str, points: list[tuple[str, float, float]]) -> str:
    """Quality against cost: one labelled point per row (x: cost per query, log scale when it spans a decade)."""
    key = hashlib.sha256(repr(("cost", title, xlabel, points)).encode()).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    ax.scatter(xs, ys, color="#2b6cb0", edgecolor="#1a365d", zorder=3)
    for label, x, y in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    positive = [x for x in xs if x > 0]
    if positive and len(positive) == len(xs) and max(positive) / min(positive) >= 10:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("nDCG@10 (%)", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.margins(x=0.2, y=0.15)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.find("<svg"):]
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = svg
    return svg
