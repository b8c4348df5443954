"""Plots of a run: learning curves from the Trainer's log history (the confusion matrix lives in metrics.py)."""

from __future__ import annotations

from pathlib import Path

# logged beside the metrics but not metrics of the model
NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def curves(log_history: list[dict]) -> tuple[dict[str, list], dict[str, list]]:
    """trainer.state.log_history -> ({"loss": [(step, value)], ...}, {"f1_macro": [(step, value)], ...}):
    the losses (train, eval) and every evaluation metric, each as (global step, value) pairs in step order."""
    losses: dict[str, list] = {}
    metrics: dict[str, list] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        if "loss" in entry:
            losses.setdefault("train loss", []).append((step, entry["loss"]))
        for key, value in entry.items():
            if not key.startswith("eval_") or not isinstance(value, (int, float)):
                continue
            name = key[len("eval_") :]
            if name.endswith(NOT_METRICS):
                continue
            target = losses if name == "loss" else metrics
            target.setdefault("eval loss" if name == "loss" else name, []).append((step, value))
    return losses, metrics


def save_learning_curves(log_history: list[dict], path: str | Path, title: str = "") -> None:
    """learning_curves.png: train (and eval) loss and each evaluation metric against optimizer steps; written under a
    temporary name, then renamed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses, metrics = curves(log_history)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, series, ylabel in ((left, losses, "loss"), (right, metrics, "evaluation metric")):
        for name, points in series.items():
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG under a temporary name in the same folder, rename it into place, close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
