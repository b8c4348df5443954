"""The model and its processor (tokenizer or image processor) for a recipe: pretrained, or from a config (init=scratch)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from textft.config import RecipeConfig, TextftError
from textft.data import hub_error

log = logging.getLogger("textft")

LOCAL_HINT = (
    "download it where the Hub is reachable (save_pretrained(DIR) or `hf download`) and set model.name_or_path=DIR"
)


def _hub_kwargs(cfg: RecipeConfig) -> dict:
    return {"revision": cfg.model.revision, "trust_remote_code": cfg.model.trust_remote_code}


def _load(loader, cfg: RecipeConfig, **kwargs):
    """Call a transformers `from_pretrained`, turning 'not found / offline' into one line naming model.name_or_path."""
    name = cfg.model.name_or_path
    try:
        return loader(name, **_hub_kwargs(cfg), **kwargs)
    except (OSError, ValueError) as e:
        if Path(name).exists():
            raise TextftError(f"model.name_or_path: {name} could not be loaded: {str(e).splitlines()[0]}") from None
        raise hub_error("model.name_or_path", name, e, LOCAL_HINT) from None


def _is_model_type(name: str) -> bool:
    from transformers import CONFIG_MAPPING

    return name in CONFIG_MAPPING


def load_processor(cfg: RecipeConfig):
    """The tokenizer (text) or image processor (image) of the recipe's model."""
    from transformers import AutoImageProcessor, AutoTokenizer

    if cfg.task == "image":
        if cfg.model.init == "scratch" and _is_model_type(cfg.model.name_or_path):
            from transformers import AutoConfig

            from textft.images import scratch_image_processor

            # no checkpoint to read a processor from: one for the recipe's image size (model.config.image_size)
            size = cfg.model.config.get("image_size") or AutoConfig.for_model(cfg.model.name_or_path).image_size
            return scratch_image_processor(cfg.model.name_or_path, size)
        return _load(AutoImageProcessor.from_pretrained, cfg)
    tokenizer = _load(AutoTokenizer.from_pretrained, cfg)
    ensure_pad_token(tokenizer)
    return tokenizer


def ensure_pad_token(tokenizer) -> None:
    """Decoder tokenizers (Llama, Mistral, GPT-2) often have no pad token, so no batch can be padded: use eos."""
    if tokenizer.pad_token is not None:
        return
    if tokenizer.eos_token is None:
        raise TextftError(
            f"model.name_or_path: the tokenizer of {tokenizer.name_or_path} has neither a pad nor an eos token, so "
            "batches cannot be padded; add one (tokenizer.add_special_tokens({'pad_token': ...}), save it) and retry"
        )
    tokenizer.pad_token = tokenizer.eos_token
    log.info(
        "the tokenizer has no pad token: padding with its eos token %r (saved with the model)", tokenizer.eos_token
    )


def prepare_tokenizer_and_config(model, processor) -> None:
    """Give the model the tokenizer's pad token id: a decoder classifier (Llama, Qwen, GPT-2, ...) reads each row's
    logits at its last non-pad token, and refuses batches of more than one row without config.pad_token_id."""
    if not hasattr(processor, "pad_token"):  # an image processor
        return
    ensure_pad_token(processor)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = processor.pad_token_id


def check_training_options(model, cfg: RecipeConfig) -> None:
    """Options a model family cannot honour, as one line before training starts (not a traceback from inside it)."""
    if (
        str(cfg.train.get("gradient_checkpointing", False)).lower() == "true"
        and not model.supports_gradient_checkpointing
    ):
        raise TextftError(
            f"train.gradient_checkpointing: {type(model).__name__} does not support it (transformers implements it "
            "for neither ALBERT, ConvNeXt nor ResNet); remove it, or lower per_device_train_batch_size to save memory"
        )


def _trainable_class(config) -> None:
    """DeiT maps to two classifiers and picks the distilled one (no loss, cannot train) for distilled checkpoints."""
    if config.model_type == "deit":
        config.architectures = ["DeiTForImageClassification"]


@contextmanager
def held_load_report() -> Iterator[list[logging.LogRecord]]:
    """Hold back transformers' LOAD REPORT warning (a table) while loading; the caller decides what to say."""
    logger = logging.getLogger("transformers.modeling_utils")
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            held.append(record)
            return False
        return True

    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)


def _load_classifier(auto_model, cfg: RecipeConfig, config, **kwargs):
    """from_pretrained, with transformers' load report replaced by one line when the only missing weights are the
    new head's (by design: a pretrained encoder gets a new classifier); any other missing weight keeps the report."""
    with held_load_report() as held:
        model, info = _load(auto_model.from_pretrained, cfg, config=config, output_loading_info=True, **kwargs)
    report_new_head(model, info, held)
    return model


def report_new_head(
    model, info: dict, held: list[logging.LogRecord], note: str = "new classifier head, initialised randomly"
) -> None:
    """One line (`note`: keys) when the weights missing from a checkpoint are all the head's, else the held report."""
    from textft.modes import head_module_names

    heads = tuple(f"{name}." for name in head_module_names(model))
    missing = sorted(info["missing_keys"])
    mismatched = sorted(key for key, *_ in info["mismatched_keys"])
    if all(key.startswith(heads) for key in missing + mismatched):
        unused = len(info["unexpected_keys"])
        if missing + mismatched:
            log.info("%s: %s", note, ", ".join(missing + mismatched))
        if unused:
            log.info("%d checkpoint weights outside this classifier are not used (e.g. a pretraining head)", unused)
    else:
        for record in held:
            logging.getLogger(record.name).handle(record)


def build_model(cfg: RecipeConfig, label_names: list[str], problem_type: str = "single_label_classification"):
    """A classifier with `len(label_names)` outputs, the real names in `config.id2label` and transformers'
    `config.problem_type` (its own loss and pipeline() pick softmax, sigmoid or none from it)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification

    auto_model = AutoModelForImageClassification if cfg.task == "image" else AutoModelForSequenceClassification
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "problem_type": problem_type,
    }
    attn = {"attn_implementation": cfg.model.attn_implementation} if cfg.model.attn_implementation else {}
    overrides = {**cfg.model.config, **labels}
    if cfg.model.init == "scratch":
        if _is_model_type(cfg.model.name_or_path):  # a model type, e.g. "vit": sizes come from model.config
            config = AutoConfig.for_model(cfg.model.name_or_path, **overrides)
        else:
            config = _load(AutoConfig.from_pretrained, cfg, **overrides)
        _trainable_class(config)
        return auto_model.from_config(config, **attn)
    config = _load(AutoConfig.from_pretrained, cfg, **overrides)
    _trainable_class(config)
    # a checkpoint that is already a classifier (e.g. the source of a transfer) may have another number of classes.
    # fp32 master weights whatever the checkpoint's dtype: transformers 5 loads a bf16-stored checkpoint (most decoder
    # LLMs) as bf16 parameters, and AdamW on them drops small updates; train.bf16 autocasts the compute instead
    model = _load_classifier(auto_model, cfg, config, ignore_mismatched_sizes=True, dtype=torch.float32, **attn)
    if _trained_on_other_labels(_load(AutoConfig.from_pretrained, cfg), label_names):
        reset_head(model)
    return model


def _trained_on_other_labels(source, label_names: list[str]) -> bool:
    """Whether a checkpoint is a classifier of other classes (e.g. Fashion-MNIST's, reused for digits)."""
    heads = ("ForSequenceClassification", "ForImageClassification")
    if not any(name.endswith(heads) for name in source.architectures or []):
        return False
    return [source.id2label[i] for i in range(source.num_labels)] != list(label_names)


def reset_head(model) -> None:
    """A new head: the old one maps features to the source's classes (same shape or not), which means nothing here."""
    from textft.modes import head_module_names

    for name in head_module_names(model):
        for module in model.get_submodule(name).modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
