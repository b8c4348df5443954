"""textft-predict: score a file with a trained classifier; one output row per input row, in input order.

    textft-predict model=outputs/bbc_minilm input=new.csv output=scored.csv
    accelerate launch textft/predict.py model=outputs/bbc_minilm input=big.parquet output=scored.parquet

The input streams in chunks (bounded memory). Within a chunk the rows are encoded as in training (the run's recipe.yaml),
sorted by length so that a batch pads to almost nothing, scored under torch.inference_mode (in bf16 where the device
computes it natively: textft.device), and put back in input order. Each finished chunk is a part file in a folder
next to the output, so a rerun skips what is done; the output appears by one rename when every chunk is scored.
Under `accelerate launch` the chunks are split over the processes and the main process assembles the output.

The input side is per task (INPUTS): a reader turns a file into chunks of rows (READERS, by file extension), and an
`Inputs` turns a chunk of rows into model inputs. Images (textft/images.py) plug in the same way: a folder of images, or a
.txt list of image paths, becomes rows of paths; any csv/jsonl/parquet with a column of paths works too.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (accelerate launch textft/predict.py): import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import codecs
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import MISSING

from textft.config import TextftError, load_recipe, run_command

log = logging.getLogger("textft")

USAGE = """usage: textft-predict model=RUN_DIR_OR_HUB_ID input=FILE output=FILE [key=value ...]

  model=PATH         a textft run directory (full or merged LoRA model), its adapter/ directory, or a Hub id
  input=FILE         .csv .tsv .jsonl .parquet, or .txt (one text per line); image models: also a folder of images
                     or a .txt with one image path a line
  image_column=NAME  image models: the column of image paths in a csv/jsonl/parquet input (default: the run's, or 'image')
  output=FILE        .csv .jsonl or .parquet: the input columns, then the predictions: single-label: label, score
                     (its probability), prob_<class>; multi-label: labels (those at or above the run's thresholds;
                     a list in jsonl/parquet, joined with the run's separator in csv), prob_<label>; regression: value;
                     then empty_input (true where the input is null or blank: those rows get no prediction)
  text_column=NAME   default: the run's data.text_column (recipe.yaml), else 'text'; [a,b] for sentence pairs
  max_length=N       default: the run's data.max_length;  truncation=head|tail|head_tail: default the run's
  long_text=window   slide windows of max_length tokens (overlap: stride=128) over long texts, average the probabilities
  batch_size=32  chunk_size=4096  device=auto|cpu|cuda  dtype=auto|float32|bfloat16|float16  resume=true
  base_model=PATH    for an adapter directory: the base model, if not where adapter_config.json says
  prefix=STR         prefix of the prediction columns (default: none, or 'pred_' when the input has such columns)

An interrupted run continues where it stopped (resume=false starts over). Several processes: accelerate launch
textft/predict.py model=... input=... output=...
"""


@dataclass
class PredictConfig:
    model: str = MISSING
    input: str = MISSING
    output: str = MISSING
    text_column: Any = None  # None: the run's data.text_column, else "text"
    image_column: str | None = None  # image models; None: the run's data.image_column, else "image"
    max_length: int | None = None  # None: the run's data.max_length, else the model's limit
    truncation: str | None = None  # None: the run's data.truncation, else head
    long_text: str = "truncate"  # truncate (as in training) | window
    stride: int = 128  # long_text=window: tokens shared by neighbouring windows
    batch_size: int = 32
    chunk_size: int = 4096  # rows read, scored and written at a time: the memory bound and the unit of resume
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 (else fp16) on GPU, bf16 on CPUs with native bf16 (AMX, AVX512-BF16), else fp32
    base_model: str | None = None  # adapter directories: overrides adapter_config.json's base_model_name_or_path
    prefix: str | None = None
    resume: bool = True
    encoding: str | None = None  # of csv/jsonl/txt input; None: the run's data.encoding, else utf-8
    progress: bool = True


OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")


# ---- reading: a file -> chunks of rows (DataFrames indexed by the row number in the file) --------------------------------


def _csv_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    from textft.data import check_encoding

    check_encoding(path, s.encoding, "input")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    # every column as text, exactly as written: the output keeps the input columns unchanged
    reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=s.chunk_size, encoding=s.encoding)
    try:
        yield from reader
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as e:
        raise TextftError(f"input: {path} could not be parsed as csv: {str(e).strip().splitlines()[-1]}") from None


def _lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """(line number, line) without its newline, decoding line by line so that an error names the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError:
                raise TextftError(
                    f"input: {path} line {number} is not valid {encoding}; convert the file to UTF-8 or set encoding=..."
                ) from None


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    start = 0
    for lines in _batched((x for x in _lines(path, s.encoding) if x[1].strip()), s.chunk_size):
        records = []
        for number, line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise TextftError(
                    f"input: {path} line {number} is not valid JSON ({e.msg}); fix or remove that line"
                ) from None
            if not isinstance(record, dict):
                raise TextftError(
                    f'input: {path} line {number} is not a JSON object; each line must be {{"column": value, ...}}'
                )
            records.append(record)
        yield pd.DataFrame.from_records(records, index=range(start, start + len(records)))
        start += len(records)


def _txt_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    column = s.text_column if isinstance(s.text_column, str) else "text"
    start = 0
    for lines in _batched(_lines(path, s.encoding), s.chunk_size):
        yield pd.DataFrame({column: [line for _, line in lines]}, index=range(start, start + len(lines)))
        start += len(lines)


def _parquet_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except Exception as e:
        raise TextftError(f"input: {path} could not be read as parquet: {str(e).splitlines()[0]}") from None
    start = 0
    for batch in file.iter_batches(batch_size=s.chunk_size):
        frame = batch.to_pandas()
        frame.index = range(start, start + len(frame))
        start += len(frame)
        yield frame
    if start == 0:
        yield file.schema_arrow.empty_table().to_pandas()


def _image_chunks(path: Path, s: PredictConfig) -> Iterator[pd.DataFrame]:
    from textft.images import image_rows

    return image_rows(path, s.image_column or "image", s.chunk_size)


def known_rows(s: PredictConfig, task: str = "text") -> int | None:
    """The input's row count where it is cheap and exact (for the progress bar): parquet metadata, lines of a .txt or
    .jsonl, images of a folder; None for csv/tsv (a quoted field may span lines)."""
    path = Path(s.input)
    suffix = path.suffix.lower()
    if path.is_dir() or (task == "image" and suffix == ".txt"):
        from textft.images import image_files

        return len(image_files(path))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix in (".txt", ".jsonl"):
        with open(path, "rb") as f:
            return sum(1 for line in f if suffix == ".txt" or line.strip())
    return None


FOLDER = "/"  # the READERS key for an input that is a folder (e.g. of images)
READERS: dict[str, Callable[[Path, PredictConfig], Iterator[pd.DataFrame]]] = {
    ".csv": _csv_chunks,
    ".tsv": _csv_chunks,
    ".jsonl": _jsonl_chunks,
    ".parquet": _parquet_chunks,
    ".txt": _txt_chunks,
    FOLDER: _image_chunks,
}


def read_chunks(s: PredictConfig, task: str = "text") -> Iterator[pd.DataFrame]:
    """The input as chunks of at most chunk_size rows; at least one (possibly empty) chunk."""
    path = Path(s.input)
    reader = READERS.get(FOLDER if path.is_dir() else path.suffix.lower())
    if task == "image" and path.suffix.lower() == ".txt":  # for an image model, a .txt lists image paths
        reader = _image_chunks
    if reader is None:
        kinds = ", ".join("a folder" if k == FOLDER else k for k in READERS)
        raise TextftError(f"input: {path} is not a supported input; use one of {kinds}")
    if not path.exists():
        raise TextftError(f"input: file {path} does not exist; fix the path (relative paths start from {Path.cwd()})")
    empty = True
    for chunk in reader(path, s):
        empty = False
        yield chunk
    if empty:
        yield pd.DataFrame()


# ---- model inputs: a chunk of rows -> encoded items (one or more per row) -> padded batches -------------------------------


@dataclass
class Inputs:
    """How one task turns rows into model inputs. `encode` gives features (one list entry per item), the row of each
    item (long_text=window makes several items per row) and each item's length (batches are formed in length order)."""

    columns: list[str]  # columns the rows must have
    encode: Callable[[pd.DataFrame], tuple[dict[str, list], np.ndarray, np.ndarray]]
    collate: Callable[[dict[str, list]], dict[str, Any]]
    column_setting: str = "text_column"  # the setting that names `columns` (for error messages)


def text_inputs(tokenizer, s: PredictConfig) -> Inputs:
    """Text rows -> token ids with the training-time encoding (textft.text.text_encoder), or overlapping windows."""
    from textft.text import text_encoder

    columns = [s.text_column] if isinstance(s.text_column, str) else list(s.text_column)
    if s.long_text == "window":
        if len(columns) == 2:
            raise TextftError(
                "long_text=window works on one text column, not on sentence pairs; use long_text=truncate"
            )
        if not 0 <= s.stride < s.max_length // 2:
            raise TextftError(f"stride={s.stride} must be at least 0 and less than half of max_length={s.max_length}")

    def texts(rows: pd.DataFrame, column: str) -> list[str]:  # rows without a text never get here (empty_inputs)
        return [v if isinstance(v, str) else str(v) for v in rows[column]]

    encode_truncated = text_encoder(tokenizer, s.max_length, s.truncation)

    def encode(rows: pd.DataFrame) -> tuple[dict[str, list], np.ndarray, np.ndarray]:
        first = texts(rows, columns[0])
        if s.long_text == "window":
            # the tokenizer's own overflow: windows of max_length tokens, `stride` tokens shared by neighbours
            enc = tokenizer(
                first, truncation=True, max_length=s.max_length, stride=s.stride, return_overflowing_tokens=True
            )
            owner = np.asarray(enc.pop("overflow_to_sample_mapping"))
            features = {k: enc[k] for k in tokenizer.model_input_names if k in enc}
        else:
            features = dict(encode_truncated(first, texts(rows, columns[1]) if len(columns) == 2 else None))
            owner = np.arange(len(first))
        return features, owner, np.fromiter(map(len, features["input_ids"]), dtype=np.int64, count=len(owner))

    def collate(features: dict[str, list]) -> dict[str, Any]:
        return tokenizer.pad(features, return_tensors="pt")  # to the longest in the batch

    return Inputs(columns=columns, encode=encode, collate=collate)


def image_inputs(processor, s: PredictConfig) -> Inputs:
    """Rows of image paths -> pixel_values, encoded per batch as in training (textft.images; no augmentation)."""
    from textft.images import image_encoder

    column = s.image_column
    encode_images = image_encoder(processor)

    def encode(rows: pd.DataFrame) -> tuple[dict[str, list], np.ndarray, np.ndarray]:
        values = rows[column]  # rows without a path never get here (empty_inputs)
        # paths only: images are read and encoded per batch in `collate`, so a chunk never holds all its pixels
        return {column: list(values)}, np.arange(len(rows)), np.zeros(len(rows), dtype=np.int64)

    def collate(features: dict[str, list]) -> dict[str, Any]:
        return {"pixel_values": encode_images(features[column])}

    return Inputs(columns=[column], encode=encode, collate=collate, column_setting="image_column")


INPUTS: dict[str, Callable[[Any, PredictConfig], Inputs]] = {"text": text_inputs, "image": image_inputs}


def score_rows(rows: pd.DataFrame, inputs: Inputs, model, s: PredictConfig, progress=None) -> np.ndarray:
    """The model's raw outputs (rows x num_labels, float32) in row order; batches are formed longest first. The
    problem type decodes them (softmax, sigmoid + thresholds, or the value itself)."""
    import torch

    n_outputs = model.config.num_labels
    if len(rows) == 0:
        return np.zeros((0, n_outputs), dtype=np.float32)
    features, owner, lengths = inputs.encode(rows)
    order = np.argsort(-lengths, kind="stable")  # longest first: a batch that does not fit fails at once
    logits = np.empty((len(owner), n_outputs), dtype=np.float32)
    rows_per_item, rows_done = len(rows) / len(owner), 0
    device = model.device
    with torch.inference_mode():
        for start in range(0, len(order), s.batch_size):
            index = order[start : start + s.batch_size]
            batch = inputs.collate({k: [v[i] for i in index] for k, v in features.items()})
            logits[index] = model(**{k: t.to(device) for k, t in batch.items()}).logits.float().cpu().numpy()
            if progress is not None:  # whole rows (long_text=window: several items per row)
                done = round((start + len(index)) * rows_per_item)
                progress.update(done - rows_done)
                rows_done = done
    if len(owner) == len(rows):
        return logits
    # long_text=window: a row's outputs are the mean of its windows' logits
    summed = np.zeros((len(rows), n_outputs), dtype=np.float64)
    np.add.at(summed, owner, logits)
    return (summed / np.bincount(owner, minlength=len(rows))[:, None]).astype(np.float32)


def with_predictions(rows: pd.DataFrame, logits: np.ndarray, problem, prefix: str) -> pd.DataFrame:
    out = rows.copy()
    for name, values in problem.decode(logits, prefix).items():
        out[name] = values
    return out


def empty_inputs(rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Rows with a null or blank value in an input column: they get no prediction, never a made-up label."""
    empty = np.zeros(len(rows), dtype=bool)
    for column in columns:
        values = rows[column]
        blank = values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        empty |= values.isna().to_numpy(dtype=bool) | blank
    return empty


def predict_rows(rows: pd.DataFrame, inputs: Inputs, model, s: PredictConfig, problem, flag: str,
                 progress=None) -> pd.DataFrame:  # fmt: skip
    """The rows with their predictions; rows without an input keep every prediction column empty and `flag` true."""
    empty = empty_inputs(rows, inputs.columns)
    scored = rows[~empty]
    out = with_predictions(scored, score_rows(scored, inputs, model, s, progress), problem, s.prefix)
    if empty.any():
        out = pd.concat([out, rows[empty]]).loc[rows.index]  # null in every prediction column, input order kept
        if progress is not None:
            progress.update(int(empty.sum()))
    out[flag] = empty
    return out


def count_flagged(parts: Path, flag: str) -> int:
    """Rows flagged in the part files (this run's and a resumed run's alike)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return sum(int(pc.sum(pq.read_table(f, columns=[flag])[flag]).as_py() or 0) for f in parts.glob("part-*.parquet"))


# ---- the model: a run directory, an adapter directory, or a Hub id --------------------------------------------------------


def _local_dir(model: str) -> Path:
    """A local directory for `model`: itself, or a download of the Hub repo (weights, configs, tokenizer, recipe)."""
    if Path(model).is_dir():
        return Path(model)
    if Path(model).exists() or model.count("/") > 1:
        raise TextftError(f"model: {model} is not a directory; give a textft run directory, its adapter/, or a Hub id")
    from huggingface_hub import snapshot_download

    from textft.data import hub_error

    try:
        return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.yaml", "*.model"]))
    except Exception as e:
        raise hub_error("model", model, e, "download the model directory (hf download) and pass model=DIR") from None


def run_info(model_dir: Path) -> dict[str, Any]:
    """What the run that made the model says about using it: inference.json (task, problem type, labels, thresholds,
    input columns and encoding), beside the model or beside its adapter/ folder; runs older than inference.json have
    only recipe.yaml, whose data section gives the same input settings. {} for a plain model (a Hub classifier)."""
    folders = (model_dir, model_dir.parent) if (model_dir / "adapter_config.json").is_file() else (model_dir,)
    for folder in folders:
        if (folder / "inference.json").is_file():
            return json.loads((folder / "inference.json").read_text())
    for folder in folders:
        if (folder / "recipe.yaml").is_file():
            recipe = load_recipe(str(folder / "recipe.yaml"))
            data = recipe.data
            keys = ("text_column", "image_column", "max_length", "truncation", "encoding")
            return {"task": recipe.task, **{k: getattr(data, k) for k in keys}}
    return {}


def run_problem(info: dict[str, Any], config):
    """The problem type of the model: the run's inference.json, else the model's config.json (problem_type, id2label,
    and thresholds where a textft run saved them)."""
    from textft.problems import problem_from_inference

    if "problem_type" in info:
        return problem_from_inference(info)
    names = [config.id2label[i] for i in range(config.num_labels)]
    kind = config.problem_type or "single_label_classification"
    return problem_from_inference(
        {"problem_type": kind, "label_names": names, "thresholds": getattr(config, "thresholds", None)}
    )


def _labelled_config(model_dir: Path) -> Path | None:
    """The classifier's config.json (with id2label): in the adapter folder, or in the run directory around it."""
    for folder in (model_dir, model_dir.parent):
        if (folder / "config.json").is_file() and "id2label" in json.loads((folder / "config.json").read_text()):
            return folder
    return None


def _adapter_base(model_dir: Path, s: PredictConfig) -> str:
    """The base model of an adapter directory: base_model=..., else adapter_config.json's base_model_name_or_path."""
    return s.base_model or json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"]


def load_classifier(model_dir: Path, task: str, s: PredictConfig):
    """(model in eval mode on its device, processor). Adapter directories load base + adapter and merge them."""
    import torch
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    auto_model = AutoModelForImageClassification if task == "image" else AutoModelForSequenceClassification
    auto_processor = AutoImageProcessor if task == "image" else AutoTokenizer
    from accelerate import PartialState

    device = s.device if s.device != "auto" else str(PartialState().device)  # one device per process under accelerate
    if (model_dir / "model.onnx").is_file():  # a textft-export folder: ONNX Runtime runs it
        from textft.export import load_onnx_classifier

        return load_onnx_classifier(model_dir, auto_processor, device)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if s.dtype == "auto":  # what the device computes well (textft.device): bf16 on GPUs and on CPUs with native bf16
        from textft.device import announce, predict_precision

        choice = predict_precision(device)
        announce("prediction", choice)
        dtype = dtypes[choice.dtype]
    elif s.dtype in dtypes:
        dtype = dtypes[s.dtype]
    else:
        raise TextftError(f"dtype={s.dtype}: choose auto, {', '.join(dtypes)}")
    try:
        if (model_dir / "adapter_config.json").is_file():
            from peft import PeftModel

            labelled = _labelled_config(model_dir)
            if labelled is None:
                raise TextftError(
                    f"model: no config.json with id2label in {model_dir} or its parent; pass the run directory"
                )
            config = AutoConfig.from_pretrained(labelled)
            labels = {"num_labels": config.num_labels, "id2label": config.id2label, "label2id": config.label2id}
            if getattr(config, "pad_token_id", None) is not None:  # decoders: the base's config may have none
                labels["pad_token_id"] = config.pad_token_id
            base = _adapter_base(model_dir, s)
            from textft.model import held_load_report, report_new_head

            try:
                # fp32 for the merge (W + BA rounded once), then the scoring dtype; a base that is a classifier of
                # another class count gets a head of the run's size, which the adapter's saved head then replaces
                with held_load_report() as held:  # the head comes with the adapter: one line, not a report
                    model, info = auto_model.from_pretrained(
                        base, dtype=torch.float32, ignore_mismatched_sizes=True, output_loading_info=True, **labels
                    )
                report_new_head(model, info, held, "the head, not in the base model, comes from the adapter")
            except OSError as e:
                raise TextftError(
                    f"model: the adapter's base model '{base}' could not be loaded ({str(e).splitlines()[0]}); "
                    f"pass base_model=PATH"
                ) from None
            model = PeftModel.from_pretrained(model, model_dir).merge_and_unload().to(dtype)
        else:
            model = auto_model.from_pretrained(model_dir, dtype=dtype)
        processor = auto_processor.from_pretrained(model_dir)
    except (OSError, ValueError) as e:
        raise TextftError(f"model: {model_dir} could not be loaded: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), processor


def resolve_settings(s: PredictConfig, info: dict[str, Any], tokenizer) -> tuple[PredictConfig, str]:
    """Fill unset settings from the run's inference info (the training-time encoding); returns (settings, task)."""
    task = info.get("task", "text")
    limit = getattr(tokenizer, "model_max_length", 512)
    defaults = {
        "text_column": "text",
        "image_column": "image",
        "max_length": limit if limit < 100_000 else 512,
        "truncation": "head",
        "encoding": "utf-8",
    }
    for key, default in defaults.items():
        if getattr(s, key) is None:
            setattr(s, key, info.get(key) or default)
    try:
        codecs.lookup(s.encoding)
    except LookupError:
        raise TextftError(f"encoding={s.encoding} is not a known text encoding (e.g. utf-8, latin-1)") from None
    choices = {
        "long_text": (s.long_text, ("truncate", "window")),
        "truncation": (s.truncation, ("head", "tail", "head_tail")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise TextftError(f"{key}={value}: choose one of {', '.join(allowed)}")
    for key in ("batch_size", "chunk_size", "max_length"):
        if getattr(s, key) < 1:
            raise TextftError(f"{key}={getattr(s, key)} must be a positive number")
    return s, task


# ---- output: part files per chunk (resume), then one file by rename ------------------------------------------------------


def _check_paths(s: PredictConfig) -> tuple[Path, Path]:
    output = Path(s.output)
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise TextftError(f"output: {output} has an unsupported extension; use one of {', '.join(OUTPUT_FORMATS)}")
    if not output.parent.is_dir():
        raise TextftError(f"output: folder {output.parent} does not exist; create it (mkdir -p {output.parent}) first")
    if Path(s.input).exists() and output.resolve() == Path(s.input).resolve():
        raise TextftError("output must not be the input file; choose another output path")
    return output, output.parent / f".{output.name}.parts"


MODEL_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "*.yaml")  # weights, configs, tokenizer, recipe


def model_fingerprint(model_dir: Path) -> dict:
    """The model's files by name -> [size, mtime_ns]: a retrained, re-merged or re-downloaded model reads differently."""
    files = sorted({p for pattern in MODEL_FILES for p in model_dir.glob(pattern) if p.is_file()})
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _model_identity(s: PredictConfig) -> dict:
    """Where the model is and what it is: its files (and, for an adapter, its base's) by size and modification time."""
    model_dir = Path(s.model) if Path(s.model).is_dir() else _local_dir(s.model)
    identity = {"model": str(model_dir.resolve()), "model_files": model_fingerprint(model_dir)}
    if (model_dir / "adapter_config.json").is_file():
        base = Path(_adapter_base(model_dir, s))
        labelled = _labelled_config(model_dir)
        identity["labels_config"] = model_fingerprint(labelled) if labelled and labelled != model_dir else None
        identity["base_files"] = model_fingerprint(base) if base.is_dir() else str(base)
    return identity


def _manifest(s: PredictConfig) -> dict:
    """What the part files depend on: a rerun with the same manifest resumes, any change starts over."""
    stat = Path(s.input).stat()
    keys = ("text_column", "max_length", "truncation", "long_text", "stride", "chunk_size", "prefix", "base_model")
    return {
        "input": str(Path(s.input).resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        **_model_identity(s),
        **{k: v for k, v in asdict(s).items() if k in keys},
    }


def _prepare_parts(parts: Path, s: PredictConfig) -> None:
    manifest = _manifest(s)
    found = parts / "manifest.json"
    if parts.is_dir() and s.resume and found.is_file() and json.loads(found.read_text()) == manifest:
        done = len(list(parts.glob("part-*.parquet")))
        if done:
            log.info("resuming: %d chunk(s) already scored in %s", done, parts)
        return
    if parts.is_dir():
        log.info("starting over: %s", "resume=false" if not s.resume else f"input or settings changed since {parts}")
        shutil.rmtree(parts)
    parts.mkdir()
    from textft.config import write_text_atomic

    write_text_atomic(found, json.dumps(manifest, indent=2))


def _to_arrow(frame: pd.DataFrame):
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed types (jsonl): keep its values as text
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        return pa.Table.from_pandas(frame.astype({c: str for c in mixed}), preserve_index=False)


def _write_part(table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _assemble(parts: Path, output: Path, pred_names: list[str], separator: str = "|") -> int:
    """Concatenate the part files, in chunk order, into the output format; rename into place; return the row count.
    List columns (multi-label `labels`) stay lists in jsonl/parquet and are joined with `separator` in csv."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(parts.glob("part-*.parquet"))
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    names = [n for n in schema.names if n not in pred_names] + pred_names  # input columns first, in first-seen order
    schema = pa.schema([schema.field(n) for n in names])
    tmp = output.with_name(f".{output.name}.tmp")
    suffix, rows = output.suffix.lower(), 0
    writer = pq.ParquetWriter(tmp, schema) if suffix == ".parquet" else open(tmp, "w", encoding="utf-8", newline="")
    try:
        for i, f in enumerate(files):
            table = pq.read_table(f)
            table = pa.table({n: table[n] if n in table.column_names else pa.nulls(len(table)) for n in names})
            table = table.cast(schema)
            rows += len(table)
            if suffix == ".parquet":
                writer.write_table(table)
            elif suffix == ".csv":
                frame = table.to_pandas()
                for name in (f.name for f in schema if pa.types.is_list(f.type)):
                    frame[name] = [separator.join(v) if v is not None else "" for v in frame[name]]
                frame.to_csv(writer, header=i == 0, index=False)
            elif len(table):
                writer.write(
                    table.to_pandas().to_json(orient="records", lines=True, force_ascii=False).rstrip("\n") + "\n"
                )
        writer.close()
        os.replace(tmp, output)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return rows


# ---- the run -------------------------------------------------------------------------------------------------------------


def predict(s: PredictConfig) -> dict:
    """Score s.input into s.output; return a summary (rows, seconds, rows_per_s, output)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    state = PartialState()
    output, parts = _check_paths(s)
    model_dir = _local_dir(s.model)
    info = run_info(model_dir)
    model, processor = load_classifier(model_dir, info.get("task", "text"), s)
    s, task = resolve_settings(s, info, processor)
    problem = run_problem(info, model.config)
    positions = getattr(model.config, "max_position_embeddings", None)
    if task == "text" and positions and s.max_length > positions:
        raise TextftError(
            f"max_length={s.max_length} is more than the model's {positions} positions; set max_length<={positions}"
        )
    inputs = INPUTS[task](processor, s)
    chunks = read_chunks(s, task)
    first = next(chunks)
    missing = [c for c in inputs.columns if c not in first.columns]
    if missing:
        found = ", ".join(map(str, first.columns)) or "none"
        raise TextftError(
            f"input: column '{missing[0]}' not found in {s.input}; columns found: {found}; set {inputs.column_setting}=<one of them>"
        )
    if s.prefix is None:  # predictions must not overwrite input columns (e.g. scoring a labelled test file)
        clash = set(problem.output_columns("")) & set(map(str, first.columns))
        s.prefix = "pred_" if clash else ""
        if clash:
            log.warning(
                "the input has column(s) %s: the predictions are named %slabel, %sscore, ...",
                sorted(clash),
                s.prefix,
                s.prefix,
            )
    flag = f"{s.prefix}empty_input"  # true where the input was null or blank: no prediction
    pred_names = [*problem.output_columns(s.prefix), flag]

    if state.is_main_process:
        _prepare_parts(parts, s)
    state.wait_for_everyone()
    started, scored = time.perf_counter(), 0
    show = s.progress and state.is_local_main_process
    total = known_rows(s, task) if show and state.num_processes == 1 else None  # a process counts only its own rows
    progress = tqdm(total=total, unit="rows", desc="predicting", disable=not show)

    def score(group: list[tuple[int, pd.DataFrame]]) -> int:
        n = 0
        with state.split_between_processes(group) as mine:  # one chunk per process
            for index, rows in mine:
                part = parts / f"part-{index:06d}.parquet"
                if part.exists():
                    progress.update(len(rows))
                    continue
                _write_part(_to_arrow(predict_rows(rows, inputs, model, s, problem, flag, progress)), part)
                n += len(rows)
        return n

    group: list[tuple[int, pd.DataFrame]] = []
    for index, rows in enumerate(itertools.chain([first], chunks)):
        group.append((index, rows))
        if len(group) == state.num_processes:
            scored += score(group)
            group = []
    scored += score(group)
    progress.close()
    scored = sum(gather_object([scored]))
    seconds = time.perf_counter() - started
    summary = {"output": str(output), "rows": None, "scored_now": scored, "seconds": round(seconds, 2)}
    summary["rows_per_s"] = round(scored / seconds, 1) if scored else None
    if state.is_main_process:
        summary["rows"] = _assemble(parts, output, pred_names, getattr(problem, "separator", "|"))
        summary["empty_inputs"] = count_flagged(parts, flag)
        shutil.rmtree(parts)
        if summary["empty_inputs"]:
            log.warning(
                "%d of %d rows had an empty or null input: no prediction for them (%s=true in %s)",
                summary["empty_inputs"], summary["rows"], flag, output,
            )  # fmt: skip
        if summary["rows"] == 0:
            log.warning("input %s has no rows: wrote an empty %s", s.input, output)
    state.wait_for_everyone()
    return summary if state.is_main_process else None


def main(argv: list[str] | None = None) -> None:
    run_command(predict, PredictConfig, USAGE, "textft-predict", argv)


if __name__ == "__main__":
    main()
