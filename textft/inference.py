"""The model side of textft-predict: a run directory, adapter directory, ONNX export or Hub id -> a classifier on its
device, the run's problem type and input settings; rows -> model inputs (per task, INPUTS) -> outputs in row order."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from textft.config import TextftError, load_recipe

if TYPE_CHECKING:
    from textft.predict import PredictConfig

log = logging.getLogger("textft")

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
    from textft.text import pad_batch, text_encoder

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

    # training's padding, on columns: to the longest in the batch, on the tokenizer's padding side
    return Inputs(columns=columns, encode=encode, collate=partial(pad_batch, tokenizer))


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
    from textft.device import variable_length_attention

    with torch.inference_mode(), variable_length_attention(device):
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


# ---- the model: a run directory, an adapter directory, or a Hub id --------------------------------------------------------


def local_dir(model: str) -> Path:
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


def labelled_config(model_dir: Path) -> Path | None:
    """The classifier's config.json (with id2label): in the adapter folder, or in the run directory around it."""
    for folder in (model_dir, model_dir.parent):
        if (folder / "config.json").is_file() and "id2label" in json.loads((folder / "config.json").read_text()):
            return folder
    return None


def adapter_base(model_dir: Path, s: PredictConfig) -> str:
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

            labelled = labelled_config(model_dir)
            if labelled is None:
                raise TextftError(
                    f"model: no config.json with id2label in {model_dir} or its parent; pass the run directory"
                )
            config = AutoConfig.from_pretrained(labelled)
            labels = {"num_labels": config.num_labels, "id2label": config.id2label, "label2id": config.label2id}
            if getattr(config, "pad_token_id", None) is not None:  # decoders: the base's config may have none
                labels["pad_token_id"] = config.pad_token_id
            base = adapter_base(model_dir, s)
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
