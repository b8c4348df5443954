"""Multi-label classification: any number of labels per row (none included); sigmoid, BCE, per-label thresholds.

Three input layouts, all read into one multi-hot `label` column of floats:
- a list column (json/jsonl/parquet/Hub: names, or ids with names from the dataset or data.label_names; go_emotions);
- a string column split by `data.label_separator` (csv/tsv: "sport|tech"; an empty cell is a row with no labels);
- one 0/1 column per label, `data.label_columns: [toxic, obscene, ...]` (the jigsaw layout).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import ClassLabel, DatasetDict, Sequence, Value

from textft.config import DataConfig, TextftError, write_text_atomic
from textft.problems.base import Problem, logits_of, unknown_label_error

log = logging.getLogger("textft")
POS_WEIGHT_CAP = 10.0  # data.class_weights=auto: negatives/positives per label, at most this
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def _row_labels(data: DataConfig, feature) -> tuple[Any, list[str] | None]:
    """(row -> list of raw label values, label names known from the data itself or None)."""
    if data.label_columns:
        columns = list(data.label_columns)

        def from_columns(row: dict) -> list:
            out = []
            for c in columns:
                v = row[c]
                if v in (1, True, "1", "1.0", "true", "True"):
                    out.append(c)
                elif v not in (0, False, None, "", "0", "0.0", "false", "False"):
                    raise TextftError(f"data.label_columns: column '{c}' holds {v!r}; give 0 or 1 per label column")
            return out

        return from_columns, columns
    col = data.label_column
    if data.label_separator:
        sep = data.label_separator

        def from_string(row: dict) -> list:
            v = row[col]
            if v is None:
                return []
            if not isinstance(v, str):
                raise TextftError(
                    f"data.label_separator is set but column '{col}' holds {v!r}, not text; unset it for list columns"
                )
            return [p.strip() for p in v.split(sep) if p.strip()]

        return from_string, None
    if isinstance(feature, Value):
        raise TextftError(
            f"data.problem_type=multi_label: column '{col}' holds single values; give a list column, "
            f"data.label_separator (e.g. '|') for a text column, or data.label_columns=[...]"
        )
    inner = getattr(feature, "feature", None)
    names = list(inner.names) if isinstance(inner, ClassLabel) else None
    return (lambda row: list(row[col] or [])), names


class MultiLabel(Problem):
    name = "multi_label"
    hf_problem_type = "multi_label_classification"
    best_metric = "f1_micro"
    summary_metrics = ("f1_micro", "f1_macro", "subset_accuracy")
    lower_is_better = ("loss", "hamming_loss")

    def __init__(self, label_names: list[str], thresholds: list[float] | None = None, separator: str = "|"):
        super().__init__(label_names)
        self.thresholds = list(thresholds) if thresholds is not None else [0.5] * len(label_names)
        self.separator = separator

    @classmethod
    def encode(cls, splits: DatasetDict, origin: dict[str, str], data: DataConfig) -> tuple[DatasetDict, Problem]:
        train = splits["train"]
        labels_of, names = _row_labels(data, train.features.get(data.label_column))
        where = "data.label_columns" if data.label_columns else f"column '{data.label_column}'"
        raw = {split: [labels_of(row) for row in ds] for split, ds in splits.items()}
        ids = [v for row in raw["train"] for v in row]
        if names is None:
            if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in ids) and ids:
                if not data.label_names:
                    names = [str(i) for i in range(max(ids) + 1)]
                else:
                    names = list(data.label_names)
            else:
                names = sorted({str(v) for v in ids})
        elif data.label_names and not data.label_columns:
            names = list(data.label_names)
        if not names:
            raise TextftError(f"{where}: the train split has no labels at all; check data.label_column / label_columns")
        index = {name: i for i, name in enumerate(names)}
        by_int = isinstance(next(iter(ids), ""), (int, np.integer)) and not data.label_columns
        out = {}
        for split, ds in splits.items():
            rows = []
            for r, values in enumerate(raw[split]):
                hot = [0.0] * len(names)
                for v in values:
                    key = names[v] if by_int and isinstance(v, (int, np.integer)) and 0 <= v < len(names) else str(v)
                    if key not in index:
                        raise unknown_label_error(v, origin[split], r, data.label_column)
                    hot[index[key]] = 1.0
                rows.append(hot)
            drop = [c for c in (data.label_columns or [data.label_column]) if c in ds.column_names]
            ds = ds.remove_columns(drop).add_column("label", rows)
            out[split] = ds.cast_column("label", Sequence(Value("float32"), length=len(names)))
        counts = np.asarray(out["train"]["label"]).sum(axis=0)
        absent = [names[i] for i in np.flatnonzero(counts == 0)]
        if absent:
            log.warning("labels with no positive training example (never predicted well): %s", ", ".join(absent))
        log.info("multi-label: %d labels, %.2f labels per train row", len(names), counts.sum() / max(len(train), 1))
        return DatasetDict(out), cls(names, separator=data.label_separator or "|")

    def split_indices(
        self, labels: list, size: float | int, seed: int, key: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Iterative stratification over label combinations (Sechidis et al. 2011; Szymanski & Kajdanowicz 2017)."""
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        y = np.asarray(labels, dtype=np.int64)
        fraction = size / len(y) if isinstance(size, int) else size
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        kept, carved = next(splitter.split(np.zeros(len(y)), y))
        return np.sort(kept), np.sort(carved)

    def loss(self, train_labels: list, data: DataConfig, label_smoothing: float = 0.0):
        return bce_loss(self.pos_weight(data.class_weights, train_labels), label_smoothing)

    def pos_weight(self, setting: Any, train_labels: list) -> torch.Tensor | None:
        """BCE pos_weight per label: `auto` = negatives / positives in train (capped at POS_WEIGHT_CAP), or a
        {label: weight} mapping (unlisted labels 1)."""
        if setting is None:
            return None
        if setting == "auto":
            y = np.asarray(train_labels)
            pos = y.sum(axis=0)
            weights = np.minimum((len(y) - pos) / np.maximum(pos, 1), POS_WEIGHT_CAP).tolist()
            log.info(
                "class weights: per-label pos_weight = negatives/positives from train, capped at %g", POS_WEIGHT_CAP
            )
        else:
            unknown = sorted(set(setting) - set(self.label_names))
            if unknown:
                raise TextftError(f"data.class_weights names label '{unknown[0]}', which is not in the data")
            weights = [float(setting.get(name, 1.0)) for name in self.label_names]
        log.info("pos_weight: %s", {n: round(w, 3) for n, w in zip(self.label_names, weights, strict=True)})
        return torch.tensor(weights, dtype=torch.float32)

    def logits_for_metrics(self, logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return torch.sigmoid(logits.float())

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        return self.metrics(eval_pred.predictions, eval_pred.label_ids, self.thresholds)

    def metrics(self, probs: np.ndarray, references: np.ndarray, thresholds) -> dict[str, float]:
        from textft.metrics import MultiLabelMetrics

        return MultiLabelMetrics().compute(
            predictions=np.asarray(probs), references=np.asarray(references).astype(np.int64), thresholds=thresholds
        )

    def calibrate(self, outputs: np.ndarray, references: np.ndarray, setting: Any = "tune") -> None:
        """data.thresholds: `tune` (per label, the threshold on the grid 0.05..0.95 that maximises the label's F1 on
        validation; ties go to the one nearest 0.5; a label without validation positives keeps 0.5), a number, or
        {label: threshold} (unlisted labels 0.5)."""
        if setting == "tune":
            y = np.asarray(references) > 0.5
            p = np.asarray(outputs)
            tuned = []
            for j in range(self.num_labels):
                if not y[:, j].any():
                    tuned.append(0.5)
                    continue
                decided = p[:, j][None, :] >= THRESHOLD_GRID[:, None]
                tp = (decided & y[:, j]).sum(axis=1)
                f1 = 2 * tp / (decided.sum(axis=1) + y[:, j].sum())
                best = np.flatnonzero(f1 >= f1.max() - 1e-12)
                tuned.append(float(THRESHOLD_GRID[best[np.argmin(abs(THRESHOLD_GRID[best] - 0.5))]]))
            self.thresholds = tuned
        elif isinstance(setting, dict):
            self.thresholds = [float(setting.get(name, 0.5)) for name in self.label_names]
        else:
            self.thresholds = [float(setting)] * self.num_labels
        log.info("thresholds: %s", dict(zip(self.label_names, self.thresholds, strict=True)))

    def extra_metrics(self, outputs: np.ndarray, references: np.ndarray) -> dict[str, float]:
        at_half = self.metrics(outputs, references, [0.5] * self.num_labels)
        return {
            f"{k}_at_0.5": v
            for k, v in at_half.items()
            if k in ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy")
        }

    def output_columns(self, prefix: str) -> list[str]:
        return [f"{prefix}labels", *(f"{prefix}prob_{name}" for name in self.label_names)]

    def decode(self, logits: np.ndarray, prefix: str) -> dict[str, Any]:
        probs = torch.sigmoid(torch.from_numpy(logits).float()).numpy()
        decided = probs >= np.asarray(self.thresholds, dtype=np.float32)
        names = self.output_columns(prefix)
        columns: dict[str, Any] = {names[0]: [[self.label_names[j] for j in np.flatnonzero(row)] for row in decided]}
        columns.update({name: probs[:, j] for j, name in enumerate(names[1:])})
        return columns

    def report(self, outputs: np.ndarray, references: np.ndarray, folder: Path, title: str) -> None:
        from textft.metrics import per_class_report

        decided = (np.asarray(outputs) >= np.asarray(self.thresholds)).astype(np.int64)
        report = per_class_report(np.asarray(references).astype(np.int64), decided, self.label_names)
        for name, t in zip(self.label_names, self.thresholds, strict=True):
            report[name]["threshold"] = t
        write_text_atomic(folder / "classification_report.json", json.dumps({"split": title, **report}, indent=2))

    def save(self, folder: Path) -> None:
        thresholds = dict(zip(self.label_names, self.thresholds, strict=True))
        write_text_atomic(folder / "thresholds.json", json.dumps(thresholds, indent=2))

    def configure_model(self, config) -> None:
        super().configure_model(config)
        config.thresholds = dict(zip(self.label_names, self.thresholds, strict=True))  # for pipeline() users

    def inference_info(self) -> dict[str, Any]:
        return {**super().inference_info(), "thresholds": self.thresholds, "label_separator": self.separator}

    @classmethod
    def from_inference(cls, info: dict[str, Any]) -> Problem:
        thresholds = info.get("thresholds")
        if isinstance(thresholds, dict):
            thresholds = [float(thresholds.get(n, 0.5)) for n in info["label_names"]]
        return cls(info["label_names"], thresholds, info.get("label_separator") or "|")


def check_thresholds(setting: Any, label_names: list[str]) -> None:
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - set(label_names))
        if unknown:
            raise TextftError(
                f"data.thresholds names label '{unknown[0]}', which is not in the data; labels: {', '.join(label_names)}"
            )


def bce_loss(pos_weight: torch.Tensor | None, label_smoothing: float = 0.0):
    """Sum of per-label binary cross-entropies over the number of (row, label) items of the accumulated batch (the
    Trainer counts every entry of the multi-hot labels), i.e. the mean BCE, exact under accumulation and DDP."""

    def loss(outputs, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        logits = logits_of(outputs).float()
        target = labels.float()
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / 2
        weight = pos_weight.to(logits.device) if pos_weight is not None else None
        total = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="sum")
        return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())

    return loss
