"""The curves of a GRPO run as a PNG: mean accuracy and format reward per step, completion length and the
reflection-word rate (the "aha" curve), with the same never-overwrite-a-stranger's-file rule as the M-STAR plot."""

from __future__ import annotations

from pathlib import Path

from mstar_data.loop.dynamics_plot import check_plot_path, save_plot


def plot_grpo(rows: list[dict], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_plot_path(out)
    steps = [r["step"] for r in rows]
    fig, (ax, ln) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax.plot(steps, [r["accuracy"] for r in rows], "-", label="accuracy reward")
    ax.plot(steps, [r["format"] for r in rows], "-", label="format reward")
    ax.plot(steps, [r["frac_zero_std"] for r in rows], ":", label="zero-variance groups")
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over the step's rollouts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title)
    ln.plot(steps, [r["mean_len"] for r in rows], "-", label="completion tokens")
    ln.set_ylabel("completion tokens")
    ln.set_xlabel("GRPO step")
    ln.grid(alpha=0.3)
    aha = ln.twinx()
    aha.plot(steps, [r["reflection"] for r in rows], "k:", label="reflection words")
    aha.set_ylabel("share with reflection words")
    fig.tight_layout()
    return save_plot(fig, out)
