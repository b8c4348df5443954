"""Problem types: what a label is, and everything that follows from it (loss, metrics, decisions, outputs, reports).

One object per run answers every question train.py and predict.py used to answer with single-label assumptions:

    encode labels (data)  -> stratify key (splits) -> loss (Trainer) -> what evaluation keeps of the logits
    -> metrics -> calibrate on validation (thresholds) -> decode logits into output columns (predict) -> reports

`single_label` (softmax, cross-entropy), `multi_label` (sigmoid, BCE, per-label thresholds) and `regression` (one output,
MSE on standardised targets, folded back into the head so the saved model predicts in the original units).
"""

from __future__ import annotations

from typing import Any

from datasets import ClassLabel, Dataset, Value

from textft.config import DataConfig, TextftError
from textft.problems.base import Problem
from textft.problems.multi_label import MultiLabel
from textft.problems.regression import Regression
from textft.problems.single_label import SingleLabel

PROBLEMS: dict[str, type[Problem]] = {"single_label": SingleLabel, "multi_label": MultiLabel, "regression": Regression}
# transformers' config.problem_type, which pipeline() reads to pick softmax / sigmoid / none
HF_PROBLEM_TYPES = {cls.hf_problem_type: name for name, cls in PROBLEMS.items()}

__all__ = ["PROBLEMS", "Problem", "problem_from_inference", "resolve_problem_type"]


def resolve_problem_type(train: Dataset, data: DataConfig) -> str:
    """`data.problem_type`, or for `auto`: list labels, a label separator or label columns -> multi_label; a float
    column with non-integer values -> regression; otherwise single_label."""
    if data.problem_type != "auto":
        return data.problem_type
    if data.label_columns or data.label_separator:
        return "multi_label"
    feature = train.features[data.label_column]
    if isinstance(feature, ClassLabel):
        return "single_label"
    if not isinstance(feature, Value):  # a list (Sequence / List) of names or ids, as in go_emotions
        return "multi_label"
    if feature.dtype.startswith("float"):
        values = train[data.label_column]
        if any(v is not None and float(v) != int(v) for v in values):
            return "regression"
    return "single_label"


def problem_from_inference(info: dict[str, Any]) -> Problem:
    """The problem of a saved run, from its inference.json (or the same keys read from a model's config.json)."""
    name = info.get("problem_type", "single_label")
    name = HF_PROBLEM_TYPES.get(name, name)
    if name not in PROBLEMS:
        raise TextftError(f"problem_type '{name}' of the saved model is unknown; expected one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name].from_inference(info)
