"""k-fold cross-validation (`cv.folds: K`): K stratified folds of train, one run per fold into output_dir/fold_N, then
mean +- std of every metric in output_dir/metrics_summary.json (the summary that `seeds` runs write), and with
`cv.refit: true` a final run on all of train into output_dir itself.

The rows are the recipe's train and validation splits together (test stays test); fold N is validation of run N and the
other folds are its train. Each fold's rows are written as parquet under output_dir/cv_data, and its run is the recipe
pointed at those files, so the fold runs go through textft-train unchanged and their recipe.yaml says what they read.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from textft.config import FilesConfig, RecipeConfig, TextftError, write_text_atomic
from textft.seeds import summarize, summary_table


def stratify_key(rows, cfg: RecipeConfig) -> list:
    """The value each row is stratified by: its class index (single-label)."""
    return list(rows["label"])


def assign_folds(keys: list, k: int, seed: int) -> list[int]:
    """The fold (0..k-1) of each row, stratified by `keys`: every fold gets its share of each key."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    if k > len(keys):
        raise TextftError(f"cv.folds={k} is more than the {len(keys)} train rows; use fewer folds")
    rarest, count = min(Counter(keys).items(), key=lambda kv: kv[1])
    if count < k:
        raise TextftError(
            f"cv.folds={k}: label {rarest!r} has only {count} train row(s), too few to stratify {k} folds; "
            f"use cv.folds<={count} or add rows"
        )
    folds = [0] * len(keys)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(keys)), keys)):
        for row in held_out:
            folds[row] = fold
    return folds


def fold_rows(folds: list[int], fold: int) -> tuple[list[int], list[int]]:
    """(train rows, validation rows) of one fold: the other folds, and the fold itself."""
    return [i for i, f in enumerate(folds) if f != fold], [i for i, f in enumerate(folds) if f == fold]


def _on_files(cfg: RecipeConfig, files: FilesConfig, output_dir: Path) -> RecipeConfig:
    """The recipe reading already-prepared split files (labels encoded, samples limited, test carved)."""
    one = copy.deepcopy(cfg)
    one.data.dataset, one.data.dataset_config, one.data.files = None, None, files
    one.data.label_column = "label"
    one.data.max_train_samples = one.data.max_eval_samples = None
    one.data.test_split = 0.0
    one.cv.folds, one.cv.refit = None, False
    one.output_dir = str(output_dir)
    return one


def run_cv(cfg: RecipeConfig, run: Callable[[RecipeConfig], dict]) -> dict[str, dict]:
    """One run per fold, then the refit (cv.refit); write output_dir/metrics_summary.json (+ .md); return the summary."""
    from accelerate import PartialState
    from datasets import concatenate_datasets

    from textft.data import load_splits

    state = PartialState()
    k, out = cfg.cv.folds, Path(cfg.output_dir)
    data_dir = out / "cv_data"
    splits, _ = load_splits(cfg)
    rows = concatenate_datasets([splits["train"], splits["validation"]])
    folds = assign_folds(stratify_key(rows, cfg), k, cfg.seed)
    test = str(data_dir / "test.parquet") if "test" in splits else None
    if state.is_main_process:
        data_dir.mkdir(parents=True, exist_ok=True)
        if test:
            splits["test"].to_parquet(test)
        rows.to_parquet(data_dir / "train_all.parquet")
        for fold in range(k):
            train_rows, validation_rows = fold_rows(folds, fold)
            rows.select(train_rows).to_parquet(data_dir / f"fold_{fold}_train.parquet")
            rows.select(validation_rows).to_parquet(data_dir / f"fold_{fold}_validation.parquet")
        write_text_atomic(data_dir / "folds.json", json.dumps({"folds": k, "seed": cfg.seed, "fold_of_row": folds}))
    state.wait_for_everyone()

    runs = {}
    for fold in range(k):
        files = FilesConfig(
            train=str(data_dir / f"fold_{fold}_train.parquet"),
            validation=str(data_dir / f"fold_{fold}_validation.parquet"),
            test=test,
        )
        one = _on_files(cfg, files, out / f"fold_{fold}")
        one.push_to_hub = False
        runs[fold] = run(one)
    summary = summarize(runs)
    refit = None
    if cfg.cv.refit:  # all of train; no rows are left to validate on, so no evaluation during training
        everything = str(data_dir / "train_all.parquet")
        one = _on_files(cfg, FilesConfig(train=everything, validation=everything, test=test), out)
        one.train = {**one.train, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False}
        one.early_stopping_patience = None
        refit = {key: v for key, v in run(one).items() if not key.startswith("eval_")}  # eval_: its training rows
    if state.is_main_process:
        write_text_atomic(out / "metrics_summary.md", summary_table(summary, list(range(k)), "folds"))
        result = {"folds": k, "metrics": summary, "refit": refit}
        write_text_atomic(out / "metrics_summary.json", json.dumps(result, indent=2))
    return summary
