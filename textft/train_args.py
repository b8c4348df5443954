"""TrainingArguments for a recipe: textft's defaults, the recipe's `train:` section, mixed precision reconciled with the
launcher and the device (textft.device), and the metric that picks the best checkpoint."""

from __future__ import annotations

import os
from typing import Any

from textft.config import RecipeConfig, RecipeError

# textft's defaults for TrainingArguments; a recipe's `train:` section overrides any of them.
TRAIN_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "learning_rate": 5e-5,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "weight_decay": 0.01,
    # no warmup, as the Trainer and the HF example: 6% cost 2.1 +- 0.6 points at 25 optimizer steps and gained nothing
    # measurable at 38-125 (benchmarks/results/seed_study.md); recipes of large encoders set their papers' 0.05-0.1
    # (a float < 1 is a fraction of the total steps)
    "warmup_steps": 0,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_steps": 20,
    "load_best_model_at_end": True,  # metric_for_best_model: the problem type's (f1_macro, f1_micro, rmse)
    "save_total_limit": 2,
    "report_to": "none",
    "train_sampling_strategy": "auto",  # length-grouped only where random batches pad a lot: textft.sampling
    "dataloader_num_workers": 0,
    "bf16": "auto",  # bf16 where the device supports it (or what `accelerate launch --mixed_precision` says)
    "tf32": "auto",  # TF32 matmuls on Ampere and newer GPUs
}


def best_metric(cfg: RecipeConfig, problem) -> tuple[str, bool]:
    """(metric_for_best_model without its eval_ prefix, greater_is_better): what picks the best checkpoint and what
    textft-search optimises. The recipe's train.metric_for_best_model, else the problem type's (`problem`: a
    textft.problems object); the recipe's train.greater_is_better, else the problem's answer for that metric (the
    Trainer itself guesses True for every name not ending in "loss", rmse included)."""
    name = str(cfg.train.get("metric_for_best_model") or problem.best_metric).removeprefix("eval_")
    greater = cfg.train.get("greater_is_better")
    return name, bool(problem.greater_is_better(name) if greater is None else greater)


def train_arguments(cfg: RecipeConfig) -> dict[str, Any]:
    """TrainingArguments kwargs: textft's defaults, then the recipe's `train:` section."""
    import torch

    from textft.sampling import STRATEGIES

    args = {**TRAIN_DEFAULTS, **cfg.train}
    if args["train_sampling_strategy"] not in STRATEGIES:
        raise RecipeError(
            f"recipe key 'train.train_sampling_strategy' is {args['train_sampling_strategy']!r}; "
            f"use one of {', '.join(STRATEGIES)}"
        )
    args.setdefault("dataloader_pin_memory", torch.cuda.is_available())  # pinning only helps host-to-GPU copies
    for key in ("eval_strategy", "save_strategy", "logging_strategy"):
        if args.get(key) is False:  # YAML 1.1 reads a bare `no` (train.eval_strategy=no) as false
            args[key] = "no"
    args.update(mixed_precision_flags(args, cfg.mode))
    if (args["bf16"] or args["fp16"]) and not _has_accelerator():
        args.setdefault("use_cpu", True)  # the Trainer refuses bf16 without a GPU unless told the CPU is meant
    if args.get("tf32") == "auto":
        from transformers.utils import is_torch_tf32_available

        args["tf32"] = True if is_torch_tf32_available() else None  # None: leave the backend's setting alone
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
        args.setdefault("use_cpu", True)  # several processes on a CPU-only machine: one gloo group, not N lone runs
    if cfg.task == "text":
        args.setdefault("remove_unused_columns", False)  # keep the `length` column for the length-grouped sampler
    if args.get("save_strategy") != args.get("eval_strategy") and args.get("load_best_model_at_end"):
        args["save_strategy"] = args["eval_strategy"]  # the Trainer requires them equal to keep the best model
    return args


def _has_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def mixed_precision_flags(args: dict[str, Any], mode: str = "full") -> dict[str, bool]:
    """`bf16`/`fp16` from the recipe (true, false, or bf16 "auto") reconciled with `accelerate launch --mixed_precision`.

    `auto` asks textft.device what the device computes well for this training `mode` (bf16 on GPUs that have it and on
    CPUs with native bf16). The launcher's choice arrives as ACCELERATE_MIXED_PRECISION. When it asks for fp16 or bf16,
    both flags stay off and the Trainer follows the launcher; a recipe that explicitly turns the other precision on is an
    error, not a silent pick.
    """
    from textft.device import Precision, announce, train_precision

    bf16, fp16 = args.get("bf16", False), args.get("fp16", False)
    for key, value in (("bf16", bf16), ("fp16", fp16)):
        if not (isinstance(value, bool) or (key == "bf16" and value == "auto")):
            allowed = "true, false or auto" if key == "bf16" else "true or false"
            raise RecipeError(f"recipe key 'train.{key}' is {value!r}; use {allowed}")
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if launcher not in ("no", ""):
        asked = "bf16" if bf16 is True else "fp16" if fp16 is True else None
        if asked and asked != launcher:
            raise RecipeError(
                f"recipe key 'train.{asked}' is true but accelerate launch asks for --mixed_precision {launcher}; "
                f"drop one of them (set train.{asked}=false, or launch with --mixed_precision {asked})"
            )
        announce("training", Precision("launcher", launcher, "accelerate launch --mixed_precision"))
        return {"bf16": False, "fp16": False}  # TrainingArguments then takes ACCELERATE_MIXED_PRECISION
    if bf16 == "auto" and not fp16:
        choice = train_precision(mode)
        bf16 = choice.dtype == "bfloat16"
        announce("training", choice)
    else:
        bf16 = bf16 is True
        set_by = "train.bf16=true" if bf16 else "train.fp16=true" if fp16 else "train.bf16=false"
        announce("training", Precision("any", "bfloat16" if bf16 else "float16" if fp16 else "float32", set_by))
    if bf16 and fp16:
        raise RecipeError("recipe keys 'train.bf16' and 'train.fp16' are both true; choose one")
    return {"bf16": bf16, "fp16": fp16}
