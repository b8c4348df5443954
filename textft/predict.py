"""textft-predict: score a file with a trained classifier; one output row per input row, in input order.

    textft-predict model=outputs/bbc_minilm input=new.csv output=scored.csv
    accelerate launch textft/predict.py model=outputs/bbc_minilm input=big.parquet output=scored.parquet

The input streams in chunks (bounded memory). Within a chunk the rows are encoded as in training (the run's recipe.yaml),
sorted by length so that a batch pads to almost nothing, scored under torch.inference_mode (in bf16 where the device
computes it natively: textft.device), and put back in input order. Each finished chunk is a part file in a folder
next to the output, so a rerun skips what is done; the output appears by one rename when every chunk is scored.
Under `accelerate launch` the chunks are split over the processes and the main process assembles the output.

This module is the command: settings and the run. textft/predict_files.py reads files into chunks of rows (READERS, by
extension) and writes part files and the output; textft/inference.py loads the model and turns rows into model inputs
(INPUTS, per task) and outputs, which the run's problem type (textft/problems/) decodes into prediction columns. Images
(textft/images.py) plug in the same way: a folder of images, or a .txt list of image paths, becomes rows of paths; any
csv/jsonl/parquet with a column of paths works too.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (accelerate launch textft/predict.py): import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import codecs
import itertools
import logging
import shutil
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from omegaconf import MISSING

from textft.cli import run_command
from textft.config import TextftError
from textft.inference import INPUTS, load_classifier, local_dir, predict_rows, run_info, run_problem
from textft.predict_files import (
    assemble,
    check_paths,
    count_flagged,
    known_rows,
    prepare_parts,
    read_chunks,
    to_arrow,
    write_part,
)

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


# ---- the run -------------------------------------------------------------------------------------------------------------


def predict(s: PredictConfig) -> dict:
    """Score s.input into s.output; return a summary (rows, seconds, rows_per_s, output)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    state = PartialState()
    output, parts = check_paths(s)
    model_dir = local_dir(s.model)
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
        prepare_parts(parts, s)
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
                write_part(to_arrow(predict_rows(rows, inputs, model, s, problem, flag, progress)), part)
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
        summary["rows"] = assemble(parts, output, pred_names, getattr(problem, "separator", "|"))
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
