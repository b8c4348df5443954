"""k-fold cross-validation (`cv.folds: K`): K stratified folds of train, one run per fold into output_dir/fold_N, then
mean +- std of every metric in output_dir/metrics_summary.json (the summary that `seeds` runs write), and with
`cv.refit: true` a final run on all of train into output_dir itself.

The rows are the recipe's train and validation splits together (test stays test, the same for every fold); fold N is
validation of run N and the other folds are its train. Each fold run is the recipe itself, loading its data as usual;
train.run's `select_splits` hook then picks the fold's rows, so labels are encoded once, by the run's problem type.
output_dir/folds.json records the fold of every row.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from textft.config import RecipeConfig, TextftError, write_text_atomic
from textft.seeds import summarize, summary_table


def stratify_key(labels: list, problem) -> list:
    """What each row is stratified by: the problem type's stratum (a class; a quantile bin for regression), or for
    multi-label the row's label vector (iterative stratification)."""
    if problem.name == "multi_label":
        return [[int(v > 0) for v in row] for row in labels]
    return list(problem.stratify_key(labels))


def assign_folds(keys: list, k: int, seed: int) -> list[int]:
    """The fold (0..k-1) of each row, stratified by `keys` (one stratum per row, or a 0/1 label vector per row):
    every fold gets its share of each stratum (label)."""
    import numpy as np

    if k > len(keys):
        raise TextftError(f"cv.folds={k} is more than the {len(keys)} train rows; use fewer folds")
    if keys and isinstance(keys[0], (list, tuple)):
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        targets = np.asarray(keys)
    else:
        from sklearn.model_selection import StratifiedKFold

        rarest, count = min(Counter(keys).items(), key=lambda kv: kv[1])
        if count < k:
            raise TextftError(
                f"cv.folds={k}: label {rarest!r} has only {count} train row(s), too few to stratify {k} folds; "
                f"use cv.folds<={count} or add rows"
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        targets = np.asarray(keys)
    folds = [0] * len(keys)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros((len(keys), 1)), targets)):
        for row in held_out:
            folds[row] = fold
    return folds


def fold_rows(folds: list[int], fold: int) -> tuple[list[int], list[int]]:
    """(train rows, validation rows) of one fold: the other folds, and the fold itself."""
    return [i for i, f in enumerate(folds) if f != fold], [i for i, f in enumerate(folds) if f == fold]


class FoldSplits:
    """train.run's `select_splits`: train+validation rows cut by fold (computed once, on the first run's data)."""

    def __init__(self, cfg: RecipeConfig) -> None:
        self.k, self.seed = cfg.cv.folds, cfg.data.split_seed  # a data split, like the carved ones
        self.folds: list[int] | None = None

    def rows(self, splits):
        from datasets import concatenate_datasets

        return concatenate_datasets([splits["train"], splits["validation"]])

    def assign(self, splits, problem) -> list[int]:
        if self.folds is None:
            self.folds = assign_folds(stratify_key(self.rows(splits)["label"], problem), self.k, self.seed)
        return self.folds

    def fold(self, fold: int) -> Callable:
        def select(splits, problem):
            rows = self.rows(splits)
            train, validation = fold_rows(self.assign(splits, problem), fold)
            splits["train"], splits["validation"] = rows.select(train), rows.select(validation)
            return splits

        return select

    def everything(self, splits, problem):
        """The refit: all rows to train on (and, as the Trainer needs one, as validation; nothing evaluates on it)."""
        splits["train"] = splits["validation"] = self.rows(splits)
        return splits


def run_cv(cfg: RecipeConfig, run: Callable[..., dict]) -> dict[str, dict]:
    """One run per fold, then the refit (cv.refit); write output_dir/metrics_summary.json (+ .md); return the summary."""
    from accelerate import PartialState

    out = Path(cfg.output_dir)
    splitter = FoldSplits(cfg)
    runs = {}
    for fold in range(cfg.cv.folds):
        one = copy.deepcopy(cfg)
        one.cv.folds, one.cv.refit, one.push_to_hub = None, False, False
        one.output_dir = str(out / f"fold_{fold}")
        runs[fold] = run(one, select_splits=splitter.fold(fold))
    summary = summarize(runs)
    refit = None
    if cfg.cv.refit:  # no rows are left to validate on, so nothing is evaluated during training
        one = copy.deepcopy(cfg)
        one.cv.folds, one.cv.refit = None, False
        one.train = {**one.train, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False}
        one.early_stopping_patience = None
        # its eval_ figures are on its own training rows: left out
        refit = {k: v for k, v in run(one, select_splits=splitter.everything).items() if not k.startswith("eval_")}
    if PartialState().is_main_process:
        write_text_atomic(
            out / "folds.json",
            json.dumps({"folds": cfg.cv.folds, "split_seed": cfg.data.split_seed, "fold_of_row": splitter.folds}),
        )
        write_text_atomic(out / "metrics_summary.md", summary_table(summary, list(range(cfg.cv.folds)), "folds"))
        result = {"folds": cfg.cv.folds, "metrics": summary, "refit": refit}
        write_text_atomic(out / "metrics_summary.json", json.dumps(result, indent=2))
    return summary
