"""Learning curves: every run writes learning_curves.png from the Trainer's log history."""

from __future__ import annotations

from PIL import Image

from textft.plots import curves, save_learning_curves

HISTORY = [
    {"loss": 1.1, "grad_norm": 3.0, "learning_rate": 1e-3, "epoch": 0.5, "step": 5},
    {"eval_loss": 0.9, "eval_accuracy": 0.6, "eval_f1_macro": 0.5, "eval_runtime": 0.2, "epoch": 1.0, "step": 10},
    {"loss": 0.7, "epoch": 1.5, "step": 15},
    {"eval_loss": 0.5, "eval_accuracy": 0.9, "eval_f1_macro": 0.88, "eval_samples_per_second": 9.0, "step": 20},
    {"train_runtime": 4.0, "train_loss": 0.8, "epoch": 2.0, "step": 20},
]


def test_curves_split_losses_from_evaluation_metrics_in_step_order():
    losses, metrics = curves(HISTORY)
    assert losses == {"train loss": [(5, 1.1), (15, 0.7)], "eval loss": [(10, 0.9), (20, 0.5)]}
    assert metrics == {"accuracy": [(10, 0.6), (20, 0.9)], "f1_macro": [(10, 0.5), (20, 0.88)]}


def test_an_empty_history_still_gives_a_picture(tmp_path):
    save_learning_curves([], tmp_path / "learning_curves.png", "empty")
    assert Image.open(tmp_path / "learning_curves.png").size[0] > 0


def test_a_training_run_writes_learning_curves_atomically(full_run):
    picture = full_run / "learning_curves.png"
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.size[0] > image.size[1]
    assert not list(full_run.glob(".*tmp*")), "no temporary file is left beside the picture"
