"""Server-side plots: matplotlib (Agg) rendered to inline SVG; matplotlib is imported only when a plot is drawn."""
from __future__ import annotations

import io


def loss_plot_svg(series: list[tuple[int, float]], *, title: str = "Training loss") -> str:
    if not series:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s, _ in series]
    losses = [v for _, v in series]
    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100)
    try:
        ax.plot(steps, losses, color="#2a6f97", linewidth=1.4, label="loss")
        if len(losses) >= 10:  # a moving average makes the trend readable through the noise
            k = max(2, len(losses) // 10)
            smooth = [sum(losses[max(0, i - k + 1) : i + 1]) / len(losses[max(0, i - k + 1) : i + 1]) for i in range(len(losses))]
            ax.plot(steps, smooth, color="#c44536", linewidth=1.6, label=f"mean of {k}")
            ax.legend(loc="upper right", frameon=False, fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG goes inline in HTML
