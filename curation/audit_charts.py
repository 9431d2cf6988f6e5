"""Plots of the audit report card (share kept against precision across vote-agreement thresholds) and of the dataset
diagnostics (shortcut AUCs). matplotlib (Agg) to inline SVG, as the data-quality plots (curation.review_charts)."""
from __future__ import annotations

from curation.review_charts import _figure, _plain_text, _svg


@_plain_text
def chart_threshold_curve(*, curve: list[dict]) -> str:
    points = [p for p in curve if p["precision"] is not None]
    if not points:
        return ""
    fig, ax = _figure(width=5.6, height=3.6)
    xs = [p["share_kept"] for p in points]
    ys = [p["precision"] for p in points]
    low = [p["precision"] - p["precision_ci"][0] if p["precision_ci"] else 0 for p in points]
    high = [p["precision_ci"][1] - p["precision"] if p["precision_ci"] else 0 for p in points]
    ax.errorbar(xs, ys, yerr=[low, high], marker="o", color="#3451b2", ecolor="#9aa6d6", capsize=3)
    for p in points:
        ax.annotate(f"≥{p['min_agreeing_votes']}", (p["share_kept"], p["precision"]), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    ax.set_xlabel("share of audited examples kept")
    ax.set_ylabel("precision of what is kept")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


@_plain_text
def chart_shortcut_aucs(*, features: dict, threshold: float) -> str:
    """Each trivial feature's strength as a label predictor (max(AUC, 1 - AUC)), against the warning line."""
    names = [n for n, f in features.items() if f.get("strength") is not None]
    if not names:
        return ""
    fig, ax = _figure(width=5.6, height=2.6)
    values = [features[n]["strength"] for n in names]
    colors = ["#b42318" if features[n]["warning"] else "#3451b2" for n in names]
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    ax.axvline(threshold, color="#b42318", linestyle="--", linewidth=1)
    ax.set_xlim(0.5, 1.0)
    ax.set_xlabel("ROC AUC of the feature alone (max of AUC, 1 - AUC)")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)
