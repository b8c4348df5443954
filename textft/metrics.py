"""Metrics that work offline, as `evaluate` modules, plus reports: per-class report, confusion matrix, scatter.

`evaluate.load("accuracy")` fetches its script from the Hub and fails offline, so textft ships its own
`evaluate.Metric`s, computed by scikit-learn / scipy as evaluate's are: single-label (accuracy, F1, ...), multi-label
(micro/macro/samples F1, subset accuracy, Hamming loss, ROC AUC, average precision) and regression (MSE, RMSE, MAE,
Pearson, Spearman, R2).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import evaluate
import numpy as np

from textft.plots import save_figure

_DESCRIPTION = "Accuracy, macro F1, weighted F1, macro precision and macro recall for single-label classification."
_INPUTS = "predictions: class indices; references: class indices."


class ClassificationMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

        y, p = np.asarray(references), np.asarray(predictions)
        return {
            "accuracy": float(accuracy_score(y, p)),
            "f1_macro": float(f1_score(y, p, average="macro", zero_division=0)),
            "f1_weighted": float(f1_score(y, p, average="weighted", zero_division=0)),
            "precision_macro": float(precision_score(y, p, average="macro", zero_division=0)),
            "recall_macro": float(recall_score(y, p, average="macro", zero_division=0)),
        }


class MultiLabelMetrics(evaluate.Metric):
    """predictions: per-label probabilities (rows x labels); references: 0/1 (rows x labels); thresholds: per label."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Micro/macro/samples F1, micro precision/recall, subset accuracy, Hamming loss, macro ROC AUC "
            "and average precision for multi-label classification.",
            citation="",
            inputs_description="predictions: probabilities per label; references: 0/1 per label; thresholds: per label.",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, thresholds=None) -> dict[str, float]:
        from sklearn.metrics import (
            accuracy_score,
            average_precision_score,
            f1_score,
            hamming_loss,
            precision_score,
            recall_score,
            roc_auc_score,
        )

        y, p = np.asarray(references), np.asarray(predictions, dtype=np.float64)
        decided = (p >= np.asarray(thresholds if thresholds is not None else 0.5)).astype(np.int64)
        # ranking metrics are defined per label only where validation has both classes
        both = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        return {
            "f1_micro": float(f1_score(y, decided, average="micro", zero_division=0)),
            "f1_macro": float(f1_score(y, decided, average="macro", zero_division=0)),
            "f1_samples": float(f1_score(y, decided, average="samples", zero_division=0)),
            "precision_micro": float(precision_score(y, decided, average="micro", zero_division=0)),
            "recall_micro": float(recall_score(y, decided, average="micro", zero_division=0)),
            "subset_accuracy": float(accuracy_score(y, decided)),
            "hamming_loss": float(hamming_loss(y, decided)),
            "roc_auc_macro": float(roc_auc_score(y[:, both], p[:, both], average="macro")) if both else float("nan"),
            "average_precision_macro": float(average_precision_score(y[:, both], p[:, both], average="macro"))
            if both
            else float("nan"),
        }


class RegressionMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="MSE, RMSE, MAE, Pearson and Spearman correlation, and R2 for regression.",
            citation="",
            inputs_description="predictions: predicted values; references: true values.",
            features=datasets.Features(
                {"predictions": datasets.Value("float32"), "references": datasets.Value("float32")}
            ),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        from scipy.stats import pearsonr, spearmanr
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        y, p = np.asarray(references, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
        mse = float(mean_squared_error(y, p))
        constant = np.ptp(p) == 0 or np.ptp(y) == 0  # correlations are undefined for a constant
        return {
            "mse": mse,
            "rmse": mse**0.5,
            "mae": float(mean_absolute_error(y, p)),
            "pearson": float("nan") if constant else float(pearsonr(y, p)[0]),
            "spearman": float("nan") if constant else float(spearmanr(y, p)[0]),
            "r2": float(r2_score(y, p)),
        }


def per_class_report(references, predictions, label_names: list[str]) -> dict:
    """Precision/recall/F1/support per class (scikit-learn's classification report, as a dict)."""
    from sklearn.metrics import classification_report

    return classification_report(
        references,
        predictions,
        labels=list(range(len(label_names))),
        target_names=label_names,
        output_dict=True,
        zero_division=0,
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_scatter(references, predictions, path: str | Path, title: str = "") -> None:
    """Predicted against true values, with the identity line (regression's confusion matrix)."""
    plt = _pyplot()
    y, p = np.asarray(references, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(y, p, s=8, alpha=0.5)
    low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def save_confusion_matrix(references, predictions, label_names: list[str], path: str | Path, title: str = "") -> None:
    """A confusion-matrix PNG (rows: true label, columns: predicted), written under a temporary name then renamed."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(5.0, 0.6 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        references,
        predictions,
        labels=list(range(len(label_names))),
        display_labels=label_names,
        xticks_rotation=45,
        colorbar=False,
        ax=ax,
    )
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
