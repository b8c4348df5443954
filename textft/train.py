"""textft-train: fine-tune a pretrained encoder into a classifier from a recipe.

    accelerate launch textft/train.py recipe=imdb_bert train.learning_rate=3e-5 mode=lora
    textft-train recipe=bbc_minilm --print-recipe

The run reads top to bottom: recipe -> data -> model + mode -> Trainer -> evaluation -> artifacts in output_dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (accelerate launch textft/train.py): import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import logging
import os
import shutil
from collections.abc import Callable

from textft.cli import split_argv
from textft.config import RecipeConfig, TextftError, available_recipes, load_recipe, to_yaml, write_text_atomic
from textft.train_args import best_metric, train_arguments

log = logging.getLogger("textft")

USAGE = """usage: textft-train recipe=NAME_OR_PATH [key=value ...] [--print-recipe]

  recipe=NAME        a bundled recipe ({recipes}) or a path to a .yaml file
  key=value          override any recipe key, e.g. train.learning_rate=3e-5 data.max_length=256 mode=lora
  --print-recipe     print the resolved recipe and exit

Modes: full | freeze_embeddings | head_only | lora. Outputs go to output_dir (default outputs/<recipe name>):
the model (safetensors, loadable by transformers.pipeline), recipe.yaml, inference.json, metrics.json, reports.
"""


def parse_args(argv: list[str]) -> tuple[str, list[str], bool]:
    """`recipe=...`, `key=value` overrides and flags -> (recipe, overrides, print_only)."""
    pairs, flags = split_argv(argv, USAGE.format(recipes=", ".join(available_recipes())), ("--print-recipe",))
    recipes = [a.split("=", 1)[1] for a in pairs if a.startswith("recipe=")]
    if len(recipes) != 1:
        raise TextftError("give exactly one recipe=NAME_OR_PATH (bundled: " + ", ".join(available_recipes()) + ")")
    return recipes[0], [a for a in pairs if not a.startswith("recipe=")], "--print-recipe" in flags


def resume_checkpoint(cfg: RecipeConfig, checkpoints: Path) -> str | None:
    """`train.resume_from_checkpoint`: a checkpoint path, or `last`/true for the newest one under output_dir."""
    from transformers.trainer_utils import get_last_checkpoint

    value = cfg.train.get("resume_from_checkpoint")
    if value in (None, False, "false", ""):
        return None
    if value in (True, "true", "last"):
        last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
        if last is None:
            log.warning(
                "resume_from_checkpoint=%s: no checkpoint in %s yet, training from the start", value, checkpoints
            )
        return last
    if not Path(value).is_dir():
        raise TextftError(f"train.resume_from_checkpoint: {value} is not a checkpoint directory; give one, or 'last'")
    return str(value)


def publish(staging: Path, output_dir: Path) -> None:
    """Move finished artifacts from the staging folder into output_dir, each by one rename."""
    for item in staging.iterdir():
        target = output_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    staging.rmdir()


def run(cfg: RecipeConfig, callbacks: list | None = None, select_splits: Callable | None = None) -> dict:
    """Train and evaluate one recipe; return the metrics written to output_dir/metrics.json. For the experiment tools:
    `callbacks`, more Trainer callbacks (a search's pruning); `select_splits(splits, problem) -> splits`, applied to the
    loaded splits (textft.search drops test, textft.cv picks a fold)."""
    from transformers import EarlyStoppingCallback, TrainingArguments, set_seed

    from textft.console import use_numeric_progress
    from textft.data import data_collator, load_splits, prepare_splits
    from textft.leakage import remove_shared_rows
    from textft.model import build_model, check_training_options, load_processor, prepare_tokenizer_and_config
    from textft.modes import apply_mode, count_parameters
    from textft.optim import GradualUnfreezing, build_optimizer, needs_optimizer, unfreeze_enabled
    from textft.plots import save_learning_curves
    from textft.text import pad_multiple
    from textft.trackers import add_recipe_logging
    from textft.trainer import TextftTrainer

    output_dir = Path(cfg.output_dir)
    checkpoints = output_dir / "checkpoints"
    train_kwargs = train_arguments(cfg)
    train_kwargs.pop("resume_from_checkpoint", None)
    args = TrainingArguments(output_dir=str(checkpoints), seed=cfg.seed, **train_kwargs)
    check_one_output_dir(output_dir)
    main_process = args.process_index == 0
    set_seed(cfg.seed)

    # 1. data: splits with an encoded `label` column, and the problem type (single-label, multi-label, regression)
    with args.main_process_first(desc="loading and tokenizing data"):
        splits, problem = load_splits(cfg)
        splits, leakage = remove_shared_rows(splits, cfg)  # train rows also held out: counted, removed (data.dedup)
        if select_splits is not None:  # search trials drop the test split; cross-validation picks a fold's rows
            splits = select_splits(splits, problem)
        problem.check_train(splits["train"]["label"], cfg.data.files.train or cfg.data.dataset)
        # from the stored labels: once images are encoded on the fly, reading a column would encode every image
        loss = problem.loss(splits["train"]["label"], cfg.data, args.label_smoothing_factor)
        processor = load_processor(cfg)
        splits = prepare_splits(splits, processor, cfg)
    if main_process:  # after the data: the resolved problem type is part of the recipe
        write_text_atomic(output_dir / "recipe.yaml", to_yaml(cfg))
    select_best_metric(args, cfg, problem)
    collator = data_collator(processor, cfg, pad_to_multiple_of=pad_multiple(args))

    # 2. model + mode: a pretrained encoder with a new head; the mode decides what trains
    model = build_model(cfg, problem.label_names, problem.hf_problem_type)
    prepare_tokenizer_and_config(model, processor)  # decoders: config.pad_token_id from the tokenizer's pad token
    check_training_options(model, cfg)  # e.g. gradient checkpointing on a family without it: one line
    # encoder classifiers take **kwargs but their loss is a plain batch mean, ignoring num_items_in_batch; left True,
    # the Trainer multiplies it by the process count (and skips the division by gradient_accumulation_steps)
    model.accepts_loss_kwargs = False
    model = apply_mode(model, cfg.mode, cfg.lora)
    trainable, total = count_parameters(model)

    # 3. train with the HF Trainer and the problem's loss; the best checkpoint by metric_for_best_model is reloaded
    callbacks = list(callbacks or [])
    callbacks += [EarlyStoppingCallback(cfg.early_stopping_patience)] if cfg.early_stopping_patience else []
    if unfreeze_enabled(cfg.unfreeze):  # freezes the body now; unfreezes it stage by stage during training
        callbacks.append(GradualUnfreezing(model, cfg.unfreeze))
    trainer = TextftTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=processor,
        data_collator=collator,
        compute_metrics=problem.compute_metrics,
        preprocess_logits_for_metrics=problem.logits_for_metrics,
        callbacks=callbacks,
        compute_loss_func=loss,
    )
    use_numeric_progress(trainer)  # logs {'loss': 1.546}, not transformers 5's {'loss': '1.546'}
    add_recipe_logging(trainer, cfg)  # train.report_to=tensorboard|trackio: the recipe as the tracked run's config
    if needs_optimizer(cfg):  # per-group learning rates (head_lr, layer_decay); every parameter, frozen ones too
        trainer.optimizer = build_optimizer(trainer, cfg.optim)
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg, checkpoints))
    problem.finalize(trainer.model)  # regression: the target scaling moves into the head

    # 4. evaluate the best model: decisions tuned on validation (multi-label thresholds), then validation and test
    metrics = {k: v for k, v in result.metrics.items() if k.startswith("train_") or k == "epoch"}
    metrics.update(trainable_params=trainable, total_params=total, problem_type=problem.name, **leakage)
    metrics["precision"] = {"bf16": "bf16", "fp16": "fp16"}.get(args.mixed_precision, "fp32")  # textft.device
    metrics["train_sampling"] = trainer.sampling or {"strategy": args.train_sampling_strategy}  # textft.sampling
    outputs = {}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in splits:
            out = trainer.predict(splits[split], metric_key_prefix=prefix)
            outputs[split] = (out.predictions, out.label_ids)
            if split == "validation":
                problem.calibrate(out.predictions, out.label_ids, cfg.data.thresholds)
            # the main keys score the decisions textft-predict applies (tuned thresholds); others beside them
            metrics.update(out.metrics)
            metrics.update({f"{prefix}_{k}": v for k, v in problem.compute_metrics(out).items()})
            metrics.update({f"{prefix}_{k}": v for k, v in problem.extra_metrics(*outputs[split]).items()})

    # 5. artifacts, written by the main process only: staged, then moved into place; metrics.json last
    staging = output_dir / ".staging"
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)
    problem.configure_model(trainer.model.config)
    save_trained_model(trainer, processor, cfg, staging)  # every process: FSDP / DeepSpeed gather the weights
    if trainer.is_world_process_zero():
        write_text_atomic(staging / "inference.json", json.dumps(inference_info(cfg, problem), indent=2))
        problem.save(staging)
        split = "test" if "test" in outputs else "validation"
        problem.report(*outputs[split], staging, f"{cfg.name}: {split}")
        save_learning_curves(trainer.state.log_history, staging / "learning_curves.png", cfg.name)
        publish(staging, output_dir)
        write_text_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
        log.info("saved to %s: %s", output_dir, summary(metrics, problem.summary_metrics))
        if cfg.push_to_hub:
            from textft.push import push_run

            push_run(output_dir, cfg.hub.repo_id, private=cfg.hub.private, revision=cfg.hub.revision)
    trainer.accelerator.wait_for_everyone()
    return metrics


def select_best_metric(args, cfg: RecipeConfig, problem) -> None:
    """metric_for_best_model: the recipe's, else the problem type's; greater_is_better set explicitly (the Trainer
    guesses True for every name not ending in "loss", rmse included)."""
    args.metric_for_best_model, args.greater_is_better = best_metric(cfg, problem)


def inference_info(cfg: RecipeConfig, problem) -> dict:
    """What predict, the model card and push need to use the model, independent of the recipe schema."""
    data = cfg.data
    inputs = {"image_column": data.image_column} if cfg.task == "image" else {
        "text_column": data.text_column, "max_length": data.max_length, "truncation": data.truncation,
        "encoding": data.encoding,
    }  # fmt: skip
    return {"format": 1, "task": cfg.task, **problem.inference_info(), **inputs}


def summary(metrics: dict, keys: tuple[str, ...]) -> dict:
    return {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float) and k.endswith(keys)}


def check_one_output_dir(output_dir: Path) -> None:
    """Every process of a distributed run must resolve the same output_dir (the main one writes, all read checkpoints)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    if PartialState().num_processes > 1:
        dirs = sorted(set(gather_object([str(output_dir.resolve())])))
        if len(dirs) > 1:
            raise TextftError(
                f"output_dir differs between processes ({', '.join(dirs)}); give an absolute output_dir=..."
            )


def save_model(model, processor, cfg: RecipeConfig, target: Path) -> None:
    """Save a standalone model (LoRA: merged) + processor into target; LoRA runs also keep target/adapter (PEFT format)."""
    if cfg.mode == "lora":
        model.save_pretrained(target / "adapter")
        processor.save_pretrained(target / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(target)  # safetensors
    processor.save_pretrained(target)


def save_trained_model(trainer, processor, cfg: RecipeConfig, target: Path) -> None:
    """save_model for the Trainer's model; every process calls it. Under FSDP or DeepSpeed the weights are sharded:
    all processes gather them (the Trainer's own saving path, accelerator.get_state_dict) into an unsharded copy on the
    main process, which saves it like any model (LoRA: adapter/ and the merged model)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        state_dict = trainer.accelerator.get_state_dict(trainer.deepspeed if trainer.is_deepspeed_enabled else model)
        if trainer.is_world_process_zero():
            model = _unsharded_copy(model, state_dict)
    if trainer.is_world_process_zero():
        save_model(model, processor, cfg, target)


def _unsharded_copy(model, state_dict: dict):
    """A CPU copy of `model` (a transformers model, or a PEFT model around one) holding the gathered weights."""
    from torch.distributed.fsdp import FSDPModule

    def fresh(module):  # FSDP2 swaps a sharded module's class for a subclass (FSDPBert...): build the original class
        return next(c for c in type(module).__mro__ if not issubclass(c, FSDPModule))(module.config)

    if hasattr(model, "peft_config"):
        from peft import get_peft_model

        copy = get_peft_model(fresh(model.get_base_model()), model.peft_config[model.active_adapter])
    else:
        copy = fresh(model)
    copy.load_state_dict(state_dict, strict=True)
    return copy


def recipe_command(
    action: Callable[[RecipeConfig], dict], argv: list[str] | None, summary_keys: tuple[str, ...]
) -> None:
    """The body of a recipe console script (train, adapt): parse, load the recipe, print it or run `action` on it,
    print a JSON summary of the metrics whose names end with `summary_keys`; a TextftError is one line, exit 2."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # its one-off "building the font cache"
    try:
        recipe, overrides, print_only = parse_args(sys.argv[1:] if argv is None else argv)
        cfg = load_recipe(recipe, overrides)
        if print_only:
            print(to_yaml(cfg), end="")
            return
        metrics = action(cfg)
    except TextftError as e:
        print(f"textft: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(summary(metrics, summary_keys)))


def run_recipe(cfg: RecipeConfig) -> dict:
    """One run, one per seed (`seeds: [...]`) or one per fold (`cv.folds: K`), with their mean metrics."""
    if cfg.cv.folds:
        from textft.cv import run_cv

        return {k: s["mean"] for k, s in run_cv(cfg, run).items()}
    if not cfg.seeds:
        return run(cfg)
    from textft.seeds import run_seeds

    return {k: s["mean"] for k, s in run_seeds(cfg, run).items()}


def main(argv: list[str] | None = None) -> None:
    recipe_command(run_recipe, argv, ("accuracy", "f1_macro", "f1_micro", "rmse", "pearson", "spearman"))


if __name__ == "__main__":
    main()
