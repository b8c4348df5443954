"""Data: read splits (Hub or local files), encode labels through the problem type, carve validation/test splits.

Modality- and problem-agnostic: text.py / images.py turn rows into model inputs, textft/problems/ reads the labels."""

from __future__ import annotations

import codecs
import logging
import os
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

from textft.config import DataConfig, RecipeConfig, TextftError
from textft.problems import Problem

log = logging.getLogger("textft")

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
TEXT_FORMATS = {".csv", ".tsv", ".json", ".jsonl", ".txt"}
SPLITS = ("train", "validation", "test")


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_DATASETS_OFFLINE") == "1"


def hub_error(key: str, name: str, err: Exception, local_hint: str) -> TextftError:
    """One message for every Hub name that could not be loaded: offline, or not found."""
    why = "the Hub is unreachable (HF_HUB_OFFLINE=1 is set)" if hub_offline() else f"{type(err).__name__}"
    return TextftError(f"{key} '{name}' could not be loaded: {why} and it is not a local path; {local_hint}")


def check_encoding(path: Path, encoding: str, key: str) -> None:
    """Fail early, naming the file and the byte, when a text file does not decode (datasets' own error is a traceback)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise TextftError(
                    f"{key}: file {path} is not valid {encoding} (byte {offset + e.start}); "
                    f"convert it to UTF-8 or set data.encoding (e.g. data.encoding=latin-1)"
                ) from None
            offset += len(chunk)


def read_file(path: str | Path, key: str, encoding: str = "utf-8") -> Dataset:
    """One local csv/tsv/json/jsonl/parquet file as a Dataset."""
    path = Path(path)
    if not path.is_file():
        raise TextftError(f"{key}: file {path} does not exist; fix the path (relative paths start from {Path.cwd()})")
    suffix = path.suffix.lower()
    if suffix not in FILE_BUILDERS:
        raise TextftError(f"{key}: file {path} has an unsupported extension; use one of {', '.join(FILE_BUILDERS)}")
    kwargs: dict[str, Any] = {}
    if suffix in TEXT_FORMATS:
        check_encoding(path, encoding, key)
        kwargs["encoding"] = encoding
    if suffix == ".tsv":
        kwargs["sep"] = "\t"
    try:
        return datasets.load_dataset(FILE_BUILDERS[suffix], data_files={"data": str(path)}, split="data", **kwargs)
    except Exception as e:
        cause = e.__cause__ or e
        raise TextftError(
            f"{key}: file {path} could not be parsed as {suffix[1:]}: {str(cause).splitlines()[0]}"
        ) from None


def _load_raw(data: DataConfig) -> tuple[DatasetDict, dict[str, str]]:
    """The splits as stored, and where each came from (for error messages)."""
    files = {s: getattr(data.files, s) for s in SPLITS if getattr(data.files, s)}
    if files:
        splits = DatasetDict({s: read_file(p, f"data.files.{s}", data.encoding) for s, p in files.items()})
        return splits, files
    name = data.dataset
    try:
        if Path(name, "dataset_dict.json").is_file():
            splits = datasets.load_from_disk(name)
        else:
            splits = datasets.load_dataset(name, data.dataset_config)
    except Exception as e:
        if Path(name).exists():
            raise TextftError(f"data.dataset: {name} could not be read: {str(e).splitlines()[0]}") from None
        raise hub_error(
            "data.dataset",
            name,
            e,
            "save it where the Hub is reachable (load_dataset(...).save_to_disk(DIR)) and set data.dataset=DIR, "
            "or point data.files.train at local csv/json/parquet files",
        ) from None
    if not isinstance(splits, DatasetDict) or "train" not in splits:
        raise TextftError(f"data.dataset '{name}' has no 'train' split; found: {', '.join(splits)}")
    splits = DatasetDict({s: splits[s] for s in SPLITS if s in splits})
    return splits, {s: f"{name}[{s}]" for s in splits}


def input_columns(cfg: RecipeConfig) -> list[str]:
    """The columns a model reads: one or two text columns, or the image column."""
    if cfg.task == "image":
        return [cfg.data.image_column]
    cols = cfg.data.text_column
    return [cols] if isinstance(cols, str) else list(cols)


def _check_columns(splits: DatasetDict, origin: dict[str, str], cfg: RecipeConfig) -> None:
    wanted = {f"data.{'image' if cfg.task == 'image' else 'text'}_column": c for c in input_columns(cfg)}
    if not cfg.data.label_columns:
        wanted["data.label_column"] = cfg.data.label_column
    for split, ds in splits.items():
        for key, col in wanted.items():
            if col not in ds.column_names:
                raise TextftError(
                    f"{key}: column '{col}' not found in {origin[split]}; columns found: {', '.join(ds.column_names)}; "
                    f"set {key}=<one of them>"
                )


def _drop_empty(splits: DatasetDict, cfg: RecipeConfig, label_required: bool = True) -> DatasetDict:
    """Rows with a null label or a null/blank input are dropped, with a count per split (a silent drop hides bad data).
    Multi-label rows keep an empty label: no labels is a valid, all-negative row."""
    cols, label = input_columns(cfg), cfg.data.label_column

    def keep(row: dict) -> bool:
        if label_required and row[label] is None:
            return False
        return all(row[c] is not None and (not isinstance(row[c], str) or row[c].strip()) for c in cols)

    out = {}
    for split, ds in splits.items():
        kept = ds.filter(keep, desc=f"dropping empty rows ({split})")
        if len(kept) < len(ds):
            log.warning(
                "dropped %d of %d rows of %s with an empty or null input or label", len(ds) - len(kept), len(ds), split
            )
        if len(kept) == 0:
            raise TextftError(
                f"split '{split}' has no rows with a non-empty input and label; check the data and its columns"
            )
        out[split] = kept
    return DatasetDict(out)


def _check_label_columns(splits: DatasetDict, origin: dict[str, str], data: DataConfig) -> None:
    for split, ds in splits.items():
        for col in data.label_columns or []:
            if col not in ds.column_names:
                raise TextftError(
                    f"data.label_columns: column '{col}' not found in {origin[split]}; "
                    f"columns found: {', '.join(ds.column_names)}"
                )


def _subset(
    ds: Dataset, problem: Problem, size: float | int, seed: int, key: str | None = None
) -> tuple[Dataset, Dataset]:
    """(rest, a stratified subset of `size` rows or that fraction); `key` names the recipe key in errors."""
    kept, carved = problem.split_indices(ds["label"], size, seed, key)
    return ds.select(kept), ds.select(carved)


def _carve(train: Dataset, problem: Problem, fraction: float, seed: int, key: str) -> tuple[Dataset, Dataset]:
    """Split a stratified fraction off train (classes, label combinations or target quantiles keep their share)."""
    if round(len(train) * fraction) < 1 or round(len(train) * (1 - fraction)) < 1:
        raise TextftError(
            f"{key}={fraction}: cannot carve a split from {len(train)} train rows; add rows or give a file"
        )
    return _subset(train, problem, fraction, seed, key)


def load_splits(cfg: RecipeConfig) -> tuple[DatasetDict, Problem]:
    """train/validation(/test) splits with one encoded `label` column, and the run's problem (its label names).

    The problem type is resolved from the data when `data.problem_type` is auto and written back into cfg (so the
    saved recipe.yaml says what ran). Carved splits and max_*_samples subsets are stratified and seeded by
    data.split_seed, independent of the training seed: every seed of a `seeds:` run scores the same test set.
    """
    from textft.problems import PROBLEMS, resolve_problem_type

    data = cfg.data
    if cfg.task == "text" and "label" in input_columns(cfg) and data.label_column != "label":
        raise TextftError("data.text_column cannot be named 'label' unless it is the label column; rename that column")
    splits, origin = _load_raw(data)
    if data.label_columns:
        _check_label_columns(splits, origin, data)
    _check_columns(splits, origin, cfg)
    if cfg.task == "image":
        from textft.images import drop_unreadable_images

        splits = drop_unreadable_images(splits, data.image_column, origin)
    problem_type = resolve_problem_type(splits["train"], data)
    log.info("problem type: %s%s", problem_type, " (detected)" if data.problem_type == "auto" else "")
    splits = _drop_empty(splits, cfg, label_required=problem_type != "multi_label")
    splits, problem = PROBLEMS[problem_type].encode(splits, origin, data)
    data.problem_type = problem_type
    if "test" not in splits and data.test_split > 0:
        splits["train"], splits["test"] = _carve(
            splits["train"], problem, data.test_split, data.split_seed, "data.test_split"
        )
        origin["test"] = f"{origin['train']} (test_split={data.test_split})"
    if "validation" not in splits:
        if data.val_split <= 0:
            raise TextftError("no validation split: set data.val_split (e.g. 0.1) or data.files.validation")
        splits["train"], splits["validation"] = _carve(
            splits["train"], problem, data.val_split, data.split_seed, "data.val_split"
        )
    limits = {"train": data.max_train_samples, "validation": data.max_eval_samples, "test": data.max_eval_samples}
    for split, limit in limits.items():
        if split in splits and limit is not None and limit < len(splits[split]):
            # a stratified subset (many datasets, imdb among them, are sorted by label: the first N rows are one class)
            splits[split] = _subset(splits[split], problem, limit, data.split_seed)[1]
    names = problem.label_names
    log.info("splits: %s; %d labels: %s", {s: len(d) for s, d in splits.items()}, len(names), ", ".join(names))
    return splits, problem


# ---- task dispatch: the only place where text and image part ways ----------------------------------------------------


def prepare_splits(splits: DatasetDict, processor, cfg: RecipeConfig) -> DatasetDict:
    """Model inputs for every split: token ids (text), or pixel_values encoded per batch, train augmented (image)."""
    if cfg.task == "image":
        from textft.images import transform_splits

        return transform_splits(splits, processor, cfg)
    from textft.text import tokenize_splits

    return tokenize_splits(splits, processor, cfg)


def data_collator(processor, cfg: RecipeConfig, pad_to_multiple_of: int | None = None):
    """Batches of model inputs: text is padded per batch; images already share one size and are stacked."""
    if cfg.task == "image":
        from transformers import DefaultDataCollator

        return DefaultDataCollator()
    from textft.text import padding_collator

    return padding_collator(processor, pad_to_multiple_of=pad_to_multiple_of)
