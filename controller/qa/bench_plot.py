"""The benchmark's traces drawn with matplotlib (the optional ``plot`` extra)."""

from __future__ import annotations

from typing import Any

from controller.qa.bench import BenchError

PLOT_HINT = ("--plot needs matplotlib, the optional `plot` extra: "
             ".venv/bin/pip install -e '.[plot]' (or: pip install 'stonewarmer[plot]')")
COLOURS = {"default": "tab:blue", "autotuned": "tab:green", "bang-bang": "tab:red", "zn-pid": "tab:orange"}


def require_matplotlib() -> None:
    """Raise :class:`BenchError` unless matplotlib is installed (before an hour of simulation, not after)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError(PLOT_HINT) from None


def plot(report: dict[str, Any], path: str) -> None:
    """Traces of every controller, one panel per scenario (rows) and plant (columns)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plants = list(report["plants"])
    names = [s["name"] for s in report["scenarios"]]
    fig, axes = plt.subplots(len(names), len(plants), figsize=(4.2 * len(plants), 2.6 * len(names)),
                             squeeze=False, sharex="row")
    for i, scenario in enumerate(report["scenarios"]):
        for j, plant in enumerate(plants):
            ax = axes[i][j]
            for r in report["runs"]:
                if r["plant"] == plant and r["scenario"] == scenario["name"]:
                    t = [p[0] / 60 for p in r["trace"]]
                    ax.plot(t, [p[1] for p in r["trace"]], color=COLOURS[r["controller"]], lw=0.9,
                            label=r["controller"])
                    sp = [p[2] for p in r["trace"]]
            ax.plot(t, sp, color="black", lw=0.6, ls="--", label="setpoint")
            ax.set_ylim(min(sp) - 2.5, max(sp) + 2.5)
            ax.set_title(f"{plant}: {scenario['name']}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("probe degC", fontsize=8)
            if i == len(names) - 1:
                ax.set_xlabel("minutes", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report['command']}: probe temperature, all controllers", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
