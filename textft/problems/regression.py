"""Regression: one number per row; MSE on standardised targets, Pearson / Spearman / RMSE, a predicted-vs-true scatter.

Targets are standardised with the train split's mean and standard deviation while training (a new head starts near 0
with a small spread, whatever the target's units). After training the scaling is folded into the head's last linear
layer (w' = std * w, b' = std * b + mean), so the saved model, pipeline() and textft-predict give the original units.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import DatasetDict, Value
from torch import nn

from textft.config import DataConfig, TextftError, write_text_atomic
from textft.problems.base import Problem, logits_of

log = logging.getLogger("textft")


class Regression(Problem):
    name = "regression"
    hf_problem_type = "regression"
    best_metric = "rmse"
    summary_metrics = ("rmse", "pearson", "spearman")
    lower_is_better = ("loss", "mse", "rmse", "mae")

    def __init__(self, label_names: list[str], mean: float = 0.0, std: float = 1.0):
        super().__init__(label_names)
        self.mean, self.std = float(mean), float(std)
        self.folded = False  # True once the scaling lives in the head: the model then outputs original units

    @classmethod
    def encode(cls, splits: DatasetDict, origin: dict[str, str], data: DataConfig) -> tuple[DatasetDict, Problem]:
        col = data.label_column
        out = {}
        for split, ds in splits.items():
            values = ds[col]
            for row, v in enumerate(values):
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
                if not ok:
                    try:
                        float(v)
                        ok = True
                    except (TypeError, ValueError):
                        pass
                if not ok or not math.isfinite(float(v)):
                    raise TextftError(
                        f"data.label_column '{col}': row {row + 1} of {origin[split]} holds {v!r}, not a number; "
                        f"regression needs numeric targets (fix the row, or set data.problem_type)"
                    )
            ds = ds.cast_column(col, Value("float32")) if ds.features[col] != Value("float32") else ds
            if col != "label":
                ds = ds.rename_column(col, "label")
            out[split] = ds
        y = np.asarray(out["train"]["label"], dtype=np.float64)
        std = float(y.std()) or 1.0
        log.info("regression target '%s': train mean %.4g, std %.4g (standardised while training)", col, y.mean(), std)
        return DatasetDict(out), cls([col], float(y.mean()), std)

    def stratify_key(self, labels: list) -> np.ndarray:
        """Quantile bins of the target (10, fewer for small sets), so every carved split spans the same range."""
        y = np.asarray(labels, dtype=np.float64)
        bins = int(max(2, min(10, len(y) // 20)))
        edges = np.unique(np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1]))
        return np.searchsorted(edges, y, side="right")

    def stratum_name(self, value) -> str:
        return f"target quantile bin {int(value) + 1}"

    def to_units(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self.folded else outputs * self.std + self.mean

    def loss(self, train_labels: list, data: DataConfig, label_smoothing: float = 0.0):
        if data.class_weights is not None:
            raise TextftError("data.class_weights does not apply to regression (there are no classes); remove it")
        if label_smoothing:
            raise TextftError("train.label_smoothing_factor does not apply to regression; remove it")

        def loss(outputs, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
            predicted = self.to_units(logits_of(outputs).float().squeeze(-1))
            total = (((predicted - labels.float()) / self.std) ** 2).sum()
            return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())

        return loss

    def logits_for_metrics(self, logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return self.to_units(logits.float().squeeze(-1))

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        from textft.metrics import RegressionMetrics

        return RegressionMetrics().compute(
            predictions=np.asarray(eval_pred.predictions).ravel(), references=np.asarray(eval_pred.label_ids).ravel()
        )

    def finalize(self, model) -> None:
        """Fold the target scaling into every single-output linear layer of the head (LoRA: its trained copy too)."""
        if self.folded:
            return
        layers = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.out_features == 1 and "lora_" not in name
        ]
        if not layers:
            raise TextftError(f"{type(model).__name__}: no single-output linear head found to carry the target scaling")
        with torch.no_grad():
            for _, layer in layers:
                layer.weight.mul_(self.std)
                if layer.bias is None:
                    raise TextftError(
                        f"{type(model).__name__}: the regression head has no bias to carry the target mean"
                    )
                layer.bias.mul_(self.std).add_(self.mean)
        self.folded = True

    def output_columns(self, prefix: str) -> list[str]:
        return [f"{prefix}value"]

    def decode(self, logits: np.ndarray, prefix: str) -> dict[str, Any]:
        return {f"{prefix}value": np.asarray(logits, dtype=np.float32)[:, 0]}

    def report(self, outputs: np.ndarray, references: np.ndarray, folder: Path, title: str) -> None:
        from textft.metrics import save_scatter

        y, p = np.asarray(references, dtype=np.float64).ravel(), np.asarray(outputs, dtype=np.float64).ravel()
        residual = p - y
        summary = {
            "split": title,
            "n": int(len(y)),
            "residual_mean": float(residual.mean()),
            "residual_std": float(residual.std()),
            "abs_residual_quantiles": {str(q): float(np.quantile(abs(residual), q)) for q in (0.5, 0.9, 0.99)},
            "target_range": [float(y.min()), float(y.max())],
            "predicted_range": [float(p.min()), float(p.max())],
        }
        write_text_atomic(folder / "regression_report.json", json.dumps(summary, indent=2))
        save_scatter(y, p, folder / "predicted_vs_true.png", title)

    def inference_info(self) -> dict[str, Any]:
        return {**super().inference_info(), "target": {"train_mean": self.mean, "train_std": self.std}}

    @classmethod
    def from_inference(cls, info: dict[str, Any]) -> Problem:
        problem = cls(info.get("label_names") or ["value"])
        problem.folded = True  # a saved model outputs original units
        return problem
