"""Data-quality plots for the review pages: matplotlib (Agg) rendered to inline SVG on the server.
matplotlib is imported inside the functions so the web process pays for it only on this page."""
from __future__ import annotations

import functools
import io


def _plain_text(chart):
    """Labels are user data (domains, prompt names): draw them as plain text. With mathtext on, a domain such as
    `$x^$` is parsed as a formula and the page fails; `$` in a label must be just a dollar sign."""

    @functools.wraps(chart)
    def wrapped(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return chart(*args, **kwargs)

    return wrapped


def _figure(width: float = 6.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "limrank"}):
        fig.tight_layout()
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is embedded in HTML.
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


@_plain_text
def chart_bar(*, counts: dict[str, float], xlabel: str = "", horizontal: bool = True, percent: bool = False) -> str:
    if not counts:
        return ""
    labels = [str(k)[:40] for k in counts]
    values = list(counts.values())
    fig, ax = _figure(height=max(2.4, 0.32 * len(labels) + 1.0) if horizontal else 3.2)
    if horizontal:
        ax.barh(labels[::-1], values[::-1], color="#3451b2")
        ax.set_xlabel(xlabel)
        if percent:
            ax.set_xlim(0, 100)
    else:
        ax.bar(labels, values, color="#3451b2")
        ax.set_ylabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


@_plain_text
def chart_hist(*, series: dict[str, list[int]], xlabel: str, bins: int = 30) -> str:
    series = {k: v for k, v in series.items() if v}
    if not series:
        return ""
    fig, ax = _figure()
    hi = max(max(v) for v in series.values())
    for name, values in series.items():
        ax.hist(values, bins=bins, range=(0, hi or 1), alpha=0.6, label=f"{name} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def quality_charts(figures: dict) -> list[dict]:
    """The data-quality page's plots from selectors.review.data_quality_figures."""
    approval = {name: 100 * row["rate"] for name, row in figures["approval_by_prompt"].items() if row["rate"] is not None}
    return [
        {"title": "Examples per query domain", "svg": chart_bar(counts=figures["domains"], xlabel="examples")},
        {"title": "Personas per persona domain", "svg": chart_bar(counts=figures["persona_domains"], xlabel="distinct personas")},
        {"title": "Examples per query variant", "svg": chart_bar(counts=figures["variants"], xlabel="examples", horizontal=False)},
        {"title": "Passage length (characters)", "svg": chart_hist(series=figures["passage_lengths"], xlabel="characters")},
        {"title": "Approval rate per prompt version (%)", "svg": chart_bar(counts=approval, xlabel="% approved", percent=True)},
    ]
