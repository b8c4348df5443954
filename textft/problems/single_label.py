"""Single-label classification: one class per row; softmax, cross-entropy, accuracy / F1, the confusion matrix."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, DatasetDict

from textft.config import DataConfig, TextftError, write_text_atomic
from textft.problems.base import Problem, logits_of, unknown_label_error

log = logging.getLogger("textft")
SEPARATORS = ("|", ";", ",")  # a single-label value holding one of these may be several labels (multi-label CSV)


def _label_names(train: Dataset, data: DataConfig) -> tuple[list[str], dict[Any, int]]:
    """Label names and the map from stored value to class index, from the train split."""
    feature = train.features[data.label_column]
    if isinstance(feature, ClassLabel):
        names = data.label_names or feature.names
        if len(names) != feature.num_classes:
            raise TextftError(
                f"data.label_names has {len(names)} names but the dataset has {feature.num_classes} classes"
            )
        return list(names), {i: i for i in range(feature.num_classes)}
    values = sorted(set(train[data.label_column]))
    if all(isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v) for v in values):
        values = sorted({str(v) for v in values})
        return values, {v: i for i, v in enumerate(values)}
    values = sorted({int(v) for v in values})
    if data.label_names:
        if values[0] < 0 or values[-1] >= len(data.label_names):
            raise TextftError(
                f"data.label_names has {len(data.label_names)} names but labels run {values[0]}..{values[-1]}; "
                f"give one name per class index 0..{values[-1]}"
            )
        return list(data.label_names), {i: i for i in range(len(data.label_names))}
    if values == list(range(len(values))):
        return [str(v) for v in values], {v: v for v in values}
    return [str(v) for v in values], {v: i for i, v in enumerate(values)}  # e.g. star ratings 1..5


def _check_not_several(names: list[str], data: DataConfig) -> None:
    """`problem_type: auto` and a value like 'sport|tech': a multi-label cell given without data.label_separator."""
    if data.problem_type != "auto":
        return
    whole = set(names)
    for name in names:
        for sep in SEPARATORS:
            parts = [p.strip() for p in name.split(sep)]
            if len(parts) > 1 and (sep != "," or any(p in whole for p in parts)):
                raise TextftError(
                    f"data.label_column '{data.label_column}': value '{name}' looks like several labels; for "
                    f"multi-label set data.label_separator='{sep}', or data.problem_type=single_label to keep it one class"
                )


class SingleLabel(Problem):
    name = "single_label"
    hf_problem_type = "single_label_classification"
    best_metric = "f1_macro"
    summary_metrics = ("accuracy", "f1_macro")

    @classmethod
    def encode(cls, splits: DatasetDict, origin: dict[str, str], data: DataConfig) -> tuple[DatasetDict, Problem]:
        names, index = _label_names(splits["train"], data)
        col = data.label_column
        is_class_label = isinstance(splits["train"].features[col], ClassLabel)
        str_keys = isinstance(next(iter(index)), str)
        if str_keys:
            _check_not_several(names, data)

        def key(v: Any) -> Any:
            return str(v) if str_keys else int(v) if isinstance(v, float) and v == int(v) else v

        out = {}
        for split, ds in splits.items():
            if not is_class_label:
                for row, v in enumerate(ds[col]):
                    if key(v) not in index:
                        raise unknown_label_error(v, origin[split], row, col)
                ds = ds.map(
                    lambda b: {col: [index[key(v)] for v in b[col]]}, batched=True, desc=f"encoding labels ({split})"
                )
            ds = ds.cast_column(col, ClassLabel(names=names))
            if col != "label":
                ds = ds.rename_column(col, "label")
            out[split] = ds
        return DatasetDict(out), cls(names)

    def stratify_key(self, labels: list) -> np.ndarray:
        return np.asarray(labels)

    def check_train(self, train_labels: list, origin: str) -> None:
        """A class without a training example can never be predicted; say which one."""
        counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=self.num_labels)
        empty = [name for name, n in zip(self.label_names, counts, strict=True) if n == 0]
        if empty:
            raise TextftError(
                f"class '{empty[0]}' has no training example in {origin} ({len(empty)} such class(es)); "
                f"add training rows for it, or remove it from the held-out data"
            )

    def class_weights(self, setting: Any, train_labels: list) -> torch.Tensor | None:
        """Per-class loss weights: `auto` = n / (classes * count) from the train split (sklearn's 'balanced'), or a
        {label name: weight} mapping (unlisted labels weigh 1), rescaled so that the mean weight over the training
        examples is 1: weights change the balance between classes, not the size of the loss (clipping, learning rate)."""
        if setting is None:
            return None
        names, k = self.label_names, self.num_labels
        counts = Counter(int(y) for y in train_labels)
        missing = [names[i] for i in range(k) if not counts[i]]
        if setting == "auto":
            if missing:
                raise TextftError(
                    f"data.class_weights=auto: class '{missing[0]}' has no training example; add rows for it or drop it"
                )
            weights = [len(train_labels) / (k * counts[i]) for i in range(k)]
        else:
            unknown = sorted(set(setting) - set(names))
            if unknown:
                raise TextftError(
                    f"data.class_weights names label '{unknown[0]}', which is not in the data; labels: {', '.join(names)}"
                )
            weights = [float(setting.get(name, 1.0)) for name in names]
            mean = sum(weights[int(y)] for y in train_labels) / len(train_labels)
            if mean <= 0:
                raise TextftError("data.class_weights gives every training example weight 0; give positive weights")
            weights = [w / mean for w in weights]
            log.info("class weights rescaled to mean 1 over the training examples (divided by %.4g)", mean)
        log.info("class weights: %s", {name: round(w, 3) for name, w in zip(names, weights, strict=True)})
        return torch.tensor(weights, dtype=torch.float32)

    def loss(self, train_labels: list, data: DataConfig, label_smoothing: float = 0.0):
        return cross_entropy_loss(self.class_weights(data.class_weights, train_labels), label_smoothing)

    def logits_for_metrics(self, logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.argmax(dim=-1)

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        from textft.metrics import ClassificationMetrics

        return ClassificationMetrics().compute(
            predictions=np.asarray(eval_pred.predictions).ravel(), references=np.asarray(eval_pred.label_ids).ravel()
        )

    def output_columns(self, prefix: str) -> list[str]:
        return [f"{prefix}label", f"{prefix}score", *(f"{prefix}prob_{name}" for name in self.label_names)]

    def decode(self, logits: np.ndarray, prefix: str) -> dict[str, Any]:
        probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
        best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        names = self.output_columns(prefix)
        columns = {
            names[0]: np.asarray(self.label_names, dtype=object)[best],
            names[1]: probs[np.arange(len(probs)), best],
        }
        columns.update({name: probs[:, j] for j, name in enumerate(names[2:])})
        return columns

    def report(self, outputs: np.ndarray, references: np.ndarray, folder: Path, title: str) -> None:
        from textft.metrics import per_class_report, save_confusion_matrix

        report = per_class_report(references, outputs, self.label_names)
        write_text_atomic(folder / "classification_report.json", json.dumps({"split": title, **report}, indent=2))
        save_confusion_matrix(references, outputs, self.label_names, folder / "confusion_matrix.png", title)


def cross_entropy_loss(weights: torch.Tensor | None, label_smoothing: float = 0.0):
    """sum of w[y] * cross-entropy (with label smoothing) over the number of examples of the accumulated batch.

    Dividing by the example count (as Keras' class_weight does), not by the sum of the batch's weights, keeps the loss
    exact under gradient accumulation and across devices: the Trainer passes the count of the whole accumulated batch
    and does not rescale a compute_loss_func's loss itself.
    """

    def loss(outputs, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        logits = logits_of(outputs)
        weight = weights.to(logits.device) if weights is not None else None
        total = F.cross_entropy(logits.float(), labels, weight=weight, reduction="sum", label_smoothing=label_smoothing)
        return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())

    return loss
