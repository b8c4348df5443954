"""The model and its processor (tokenizer or image processor) for a recipe: pretrained, or from a config (init=scratch)."""

from __future__ import annotations

from pathlib import Path

from textft.config import RecipeConfig, TextftError
from textft.data import hub_error

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
    return _load(AutoTokenizer.from_pretrained, cfg)


def build_model(cfg: RecipeConfig, label_names: list[str], problem_type: str = "single_label_classification"):
    """A classifier with `len(label_names)` outputs, the real names in `config.id2label` and transformers'
    `config.problem_type` (its own loss and pipeline() pick softmax, sigmoid or none from it)."""
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
        return auto_model.from_config(config, **attn)
    config = _load(AutoConfig.from_pretrained, cfg, **overrides)
    # a checkpoint that is already a classifier (e.g. the source of a transfer) may have another number of classes
    model = _load(auto_model.from_pretrained, cfg, config=config, ignore_mismatched_sizes=True, **attn)
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
