"""textft-adapt: domain adaptation by continued masked-language-model pretraining on unlabelled target-domain text.

    python -m textft.adapt recipe=bbc_minilm_mlm
    textft-train recipe=bbc_minilm model.name_or_path=outputs/bbc_minilm_mlm

It reads the text column of the recipe's train data (labels are not needed, and validation/test text is not touched),
trains model.name_or_path with the MLM objective through the same Trainer and `train:` settings as classification,
and writes the adapted encoder to output_dir in the layout of the source model (a valid model.name_or_path for a
classification recipe) with the tokenizer, recipe.yaml and metrics.json (held-out MLM loss and perplexity before and
after). The classification head is new in either case; BERT's pooler, which MLM does not train, is kept from the
source, so an adapted and a plain run differ only in the encoder weights.

A source that ships only encoder weights (the offline MiniLM is a BertModel) has no MLM head: its transform layer
starts random (the decoder is tied to the word embeddings). Set `unfreeze.stage_steps`/`stage_epochs` to train that
head alone first, so its random start does not push noise into the encoder (bbc_minilm_mlm does).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

from textft.config import RecipeConfig, TextftError, to_yaml, write_text_atomic
from textft.train import publish, recipe_command
from textft.train_args import train_arguments

log = logging.getLogger("textft")


def load_texts(cfg: RecipeConfig):
    """The recipe's train split reduced to tokenizable text: train and held-out parts for MLM."""
    from textft.data import _load_raw, input_columns

    if cfg.task != "text":
        raise TextftError(f"textft.adapt trains a masked language model on text; task is '{cfg.task}'")
    splits, origin = _load_raw(cfg.data)
    train, cols = splits["train"], input_columns(cfg)
    for col in cols:
        if col not in train.column_names:
            raise TextftError(
                f"data.text_column: column '{col}' not found in {origin['train']}; columns: {', '.join(train.column_names)}"
            )
    train = train.select_columns(cols).filter(lambda row: all(row[c] and str(row[c]).strip() for c in cols))
    if len(train) < 2:
        raise TextftError(f"{origin['train']} has fewer than 2 non-empty texts in {', '.join(cols)}; give more text")
    parts = train.train_test_split(test_size=max(cfg.data.val_split, 1 / len(train)), seed=cfg.seed)
    train, held_out = parts["train"], parts["test"]
    if cfg.data.max_train_samples is not None and cfg.data.max_train_samples < len(train):
        train = train.shuffle(seed=cfg.seed).select(range(cfg.data.max_train_samples))
    return train, held_out, cols


def run(cfg: RecipeConfig) -> dict:
    """Continue MLM pretraining of model.name_or_path on the recipe's text; save the adapted encoder to output_dir."""
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        DataCollatorForLanguageModeling,
        TrainingArguments,
        set_seed,
    )

    from textft.model import _load, load_processor
    from textft.optim import GradualUnfreezing, build_optimizer, needs_optimizer, unfreeze_enabled
    from textft.text import text_encoder
    from textft.trainer import TextftTrainer

    output_dir = Path(cfg.output_dir)
    train_kwargs = {k: v for k, v in train_arguments(cfg).items() if k != "resume_from_checkpoint"}
    # the best checkpoint is the one with the lowest held-out MLM loss (classification metrics do not exist here)
    train_kwargs.update(metric_for_best_model="loss", greater_is_better=False)
    args = TrainingArguments(output_dir=str(output_dir / "checkpoints"), seed=cfg.seed, **train_kwargs)
    set_seed(cfg.seed)

    # 1. unlabelled text -> token ids; the collator masks mlm.probability of the tokens of each batch
    train, held_out, cols = load_texts(cfg)
    tokenizer = load_processor(cfg)
    encode = text_encoder(tokenizer, cfg.data.max_length, cfg.data.truncation)

    def tokenize(batch: dict) -> dict:
        return encode(batch[cols[0]], batch[cols[1]] if len(cols) == 2 else None)

    train, held_out = (
        ds.map(tokenize, batched=True, remove_columns=cols, desc="tokenizing") for ds in (train, held_out)
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm.probability, seed=cfg.seed)

    # 2. the encoder with an MLM head (new and partly random when the source ships only encoder weights)
    model = _load(AutoModelForMaskedLM.from_pretrained, cfg)
    callbacks = [GradualUnfreezing(model, cfg.unfreeze)] if unfreeze_enabled(cfg.unfreeze) else []
    trainer = TextftTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=callbacks,
    )
    if needs_optimizer(cfg):
        trainer.optimizer = build_optimizer(trainer, cfg.optim)
    before = trainer.evaluate(metric_key_prefix="before")["before_loss"]
    result = trainer.train()
    after = trainer.evaluate(metric_key_prefix="after")["after_loss"]
    metrics = {
        "mlm_loss_before": before,
        "mlm_loss_after": after,
        "perplexity_before": math.exp(before),
        "perplexity_after": math.exp(after),
        "train_texts": len(train),
        "held_out_texts": len(held_out),
        **{k: v for k, v in result.metrics.items() if k.startswith("train_")},
    }

    # 3. the adapted encoder in the source's layout: the source model with the trained encoder weights loaded into it
    if trainer.is_world_process_zero():
        encoder = _load(AutoModel.from_pretrained, cfg)
        missing, unexpected = encoder.load_state_dict(trainer.model.base_model.state_dict(), strict=False)
        if unexpected or any(not k.startswith("pooler.") for k in missing):
            raise TextftError(f"adapted weights do not fit {type(encoder).__name__}: {(unexpected or missing)[0]}")
        staging = output_dir / ".staging"
        shutil.rmtree(staging, ignore_errors=True)
        encoder.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_text_atomic(staging / "recipe.yaml", to_yaml(cfg))
        publish(staging, output_dir)
        write_text_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
        log.info(
            "adapted encoder saved to %s: MLM perplexity %.2f -> %.2f", output_dir, math.exp(before), math.exp(after)
        )
    trainer.accelerator.wait_for_everyone()
    return metrics


def main(argv: list[str] | None = None) -> None:
    recipe_command(run, argv, ("mlm_loss_before", "mlm_loss_after", "perplexity_before", "perplexity_after"))


if __name__ == "__main__":
    main()
