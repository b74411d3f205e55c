"""R3V's test-time figure: self-select accuracy against majority vote over the same K samples, for each K."""

from __future__ import annotations

from pathlib import Path


def plot_self_select(curve: list[tuple[int, float | None, float | None]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mstar_data.loop.dynamics_plot import check_plot_path, save_plot

    out = check_plot_path(out)
    ks = [k for k, _, _ in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [s for _, s, _ in curve], "o-", label="self-select")
    ax.plot(ks, [m for _, _, m in curve], "s--", label="majority vote")
    ax.set_xlabel("candidates K (the first K samples)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_plot(fig, out)
