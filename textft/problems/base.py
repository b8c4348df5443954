"""The interface every problem type implements, and the pieces they share."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from datasets import DatasetDict

from textft.config import DataConfig, TextftError

log = logging.getLogger("textft")


def logits_of(outputs) -> Any:
    return outputs["logits"] if isinstance(outputs, dict) else outputs[0]


class Problem:
    """A problem type. Subclasses set the class attributes and implement the methods that raise NotImplementedError."""

    name: ClassVar[str]
    hf_problem_type: ClassVar[str]  # config.problem_type
    best_metric: ClassVar[str]  # default metric_for_best_model
    summary_metrics: ClassVar[tuple[str, ...]]  # metrics printed at the end of a run
    lower_is_better: ClassVar[tuple[str, ...]] = ("loss",)

    def __init__(self, label_names: list[str]):
        self.label_names = list(label_names)

    # ---- data ----------------------------------------------------------------------------------------------------

    @classmethod
    def encode(cls, splits: DatasetDict, origin: dict[str, str], data: DataConfig) -> tuple[DatasetDict, Problem]:
        """Read the label column(s) of every split into one `label` column; the problem, fitted on train."""
        raise NotImplementedError

    def check_train(self, train_labels: list, origin: str) -> None:
        """Refuse a training split the problem cannot learn from (single-label: a class without rows)."""

    def stratify_key(self, labels: list) -> np.ndarray:
        """One class per row to stratify splits by (multi-label overrides `split_indices` instead)."""
        raise NotImplementedError

    def split_indices(
        self, labels: list, size: float | int, seed: int, key: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(kept, carved) row indices, carved being `size` rows (or that fraction), stratified by `stratify_key`.
        When a class is too small for both parts: an error naming the recipe `key` if given, else a random split."""
        from sklearn.model_selection import train_test_split

        index = np.arange(len(labels))
        strata = self.stratify_key(labels)
        try:
            kept, carved = train_test_split(index, test_size=size, stratify=strata, random_state=seed)
        except ValueError as e:
            if key is not None:
                values, counts = np.unique(strata, return_counts=True)
                rarest = self.stratum_name(values[counts.argmin()])
                raise TextftError(
                    f"{key}={size}: cannot carve a stratified split from {len(labels)} train rows ({rarest} has "
                    f"{counts.min()}): {str(e).splitlines()[0]}; add rows or give the split as a file"
                ) from None
            log.warning("could not stratify a subset of %s rows by label; taking it at random", size)
            kept, carved = train_test_split(index, test_size=size, random_state=seed)
        return np.sort(kept), np.sort(carved)

    def stratum_name(self, value) -> str:
        return f"class '{self.label_names[int(value)]}'"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    # ---- training ------------------------------------------------------------------------------------------------

    def loss(self, train_labels: list, data: DataConfig, label_smoothing: float = 0.0):
        """compute_loss_func(outputs, labels, num_items_in_batch): a sum over items divided by the items of the whole
        (accumulated, all-process) batch, which the Trainer passes; so exact under accumulation and DDP."""
        raise NotImplementedError

    def logits_for_metrics(self, logits, labels):
        """What evaluation keeps of each batch's logits (not the logits themselves, which can exhaust memory)."""
        raise NotImplementedError

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        raise NotImplementedError

    def greater_is_better(self, metric: str) -> bool:
        return not metric.removeprefix("eval_").endswith(self.lower_is_better)

    def finalize(self, model) -> None:
        """After training, before the last evaluations and saving (regression folds its scaling into the head)."""

    def calibrate(self, outputs: np.ndarray, references: np.ndarray, setting: Any = None) -> None:
        """Tune decisions on validation outputs (multi-label thresholds, from data.thresholds)."""

    def extra_metrics(self, outputs: np.ndarray, references: np.ndarray) -> dict[str, float]:
        """Figures beside the main ones (multi-label: at threshold 0.5)."""
        return {}

    # ---- outputs -------------------------------------------------------------------------------------------------

    def output_columns(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def decode(self, logits: np.ndarray, prefix: str) -> dict[str, Any]:
        """Raw model outputs (rows x num_labels) -> prediction columns for textft-predict."""
        raise NotImplementedError

    def report(self, outputs: np.ndarray, references: np.ndarray, folder: Path, title: str) -> None:
        """Report files for the final split (per-class report, confusion matrix, scatter)."""
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        """Files of the problem's own beside the model (multi-label: thresholds.json)."""

    def configure_model(self, config) -> None:
        """What the saved config.json carries so that pipeline() decodes the model by itself."""
        config.problem_type = self.hf_problem_type

    def inference_info(self) -> dict[str, Any]:
        """What inference needs, written to the run's inference.json."""
        return {"problem_type": self.name, "label_names": self.label_names}

    @classmethod
    def from_inference(cls, info: dict[str, Any]) -> Problem:
        return cls(info["label_names"])


def unknown_label_error(value: Any, split_origin: str, row: int, column: str) -> TextftError:
    return TextftError(
        f"label '{value}' in {split_origin} (row {row + 1}, column '{column}') never appears in the train split; "
        f"add training rows for it or remove those rows"
    )
