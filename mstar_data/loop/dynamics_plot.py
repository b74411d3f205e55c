"""The dynamics curves of a run as a PNG: greedy accuracy, Pass@K and Reward-Pass@2 per iteration, and T.

The PNG carries a text chunk naming mstar as its writer: a later plot replaces only such a file, never an image
(or anything else) that was there before.
"""

from __future__ import annotations

from pathlib import Path

from mstar_data.errors import MstarError

SOFTWARE = "mstar dynamics plot"


def written_by_us(path: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.format == "PNG" and im.info.get("Software") == SOFTWARE
    except Exception:  # not an image at all
        return False


def check_plot_path(out) -> Path:
    """Where a plot may go: a new file, or a plot mstar wrote before; anything else is left alone."""
    out = Path(out)
    if out.is_dir() or (out.exists() and not written_by_us(out)):
        raise MstarError(f"{out}: exists and is not a dynamics plot written by mstar; it is left alone "
                         f"(give another path)")
    return out


def save_plot(fig, out: Path) -> Path:
    """The PNG, written atomically and marked as ours (so a later plot may replace it)."""
    import matplotlib.pyplot as plt

    from mstar_data.outputs import write_file_atomically

    out.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png",
                                                       metadata={"Software": SOFTWARE}))
    plt.close(fig)
    return out


def plot_dynamics(rows: list[dict], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_plot_path(out)
    its = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(its, [r["greedy_acc"] for r in rows], "o-", label="greedy accuracy")
    k = next((r["k"] for r in rows if r["k"]), "K")
    ax.plot(its, [r["pass_at_k"] for r in rows], "s-", label=f"Pass@{k}")
    if any(r["reward_pass_at_2"] is not None for r in rows):
        ax.plot(its, [r["reward_pass_at_2"] for r in rows], "^-", label="Reward-Pass@2")
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy on the val split")
    ax.set_ylim(0, 1)
    ax.set_xticks(its)
    ax.grid(alpha=0.3)
    t_ax = ax.twinx()
    t_ax.plot(its, [r["temperature"] for r in rows], "k:", alpha=0.6, label="temperature")
    t_ax.set_ylabel("sampling temperature")
    lines = ax.get_legend_handles_labels()[0] + t_ax.get_legend_handles_labels()[0]
    # The legend sits under the axes, where no curve can run behind it.
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=len(lines), fontsize=8, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return save_plot(fig, out)
