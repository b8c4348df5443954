"""Training modes: which parameters of a classifier train. full | freeze_embeddings | head_only | lora.

Works for any transformers `*ForSequenceClassification` / `*ForImageClassification` with the usual layout:
`model.base_model` is the pretrained body, everything outside it is the new head (decoders: `score`). The embeddings
are found under the names the families give them (`embeddings`; decoders `embed_tokens`, GPT-2 `wte` + `wpe`; ResNet
`embedder`).
"""

from __future__ import annotations

import logging

from torch import nn

from textft.config import LoraConfig, TextftError

log = logging.getLogger("textft")

# LoRA targets: the attention query and value projections, as in the LoRA paper, under the names architectures give
# them (BERT/RoBERTa/ELECTRA/ALBERT: query/value; DistilBERT: q_lin/v_lin; DeBERTa-v2: query_proj/value_proj;
# transformers 5's ViT/DeiT/DINOv2/Swin and the decoders Llama/Qwen/Mistral/Gemma: q_proj/v_proj). Where query, key and
# value are one fused layer, that layer (ModernBERT: Wqkv; GPT-2: c_attn). The first match among the body's layers is used.
QUERY_VALUE_NAMES = [
    ("query", "value"),
    ("q_proj", "v_proj"),
    ("q_lin", "v_lin"),
    ("query_proj", "value_proj"),
    ("Wqkv",),
    ("c_attn",),
]
# where a family keeps its embeddings (the first name the body has wins; GPT-2 keeps token and position tables apart)
EMBEDDING_NAMES = [("embeddings",), ("embed_tokens",), ("wte", "wpe"), ("embedder",)]


def _projections() -> tuple[type, ...]:
    """Layer types LoRA wraps as linear projections: nn.Linear and GPT-2's Conv1D (a linear layer, weight transposed)."""
    from transformers.pytorch_utils import Conv1D

    return (nn.Linear, Conv1D)


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the modules that form the classification head.

    The head is every child outside the encoder (BERT/ViT: `classifier`; DistilBERT: `pre_classifier` + `classifier`)
    plus BERT's `pooler`: a dense+tanh layer that exists only to feed a classifier (it was trained for next-sentence
    prediction, which fine-tuning discards). Counting it in the head gives BERT the same head shape as DistilBERT
    (dense -> activation -> linear) and lets a head-only run re-learn the CLS projection for the new task.
    """
    base = model.base_model
    names = [
        name
        for name, child in model.named_children()
        if child is not base and next(child.parameters(), None) is not None
    ]
    pooler = getattr(base, "pooler", None)
    if pooler is not None and next(pooler.parameters(), None) is not None:  # Swin/ResNet pool without weights
        names.append(f"{model.base_model_prefix}.pooler")
    if not names:
        raise TextftError(f"{type(model).__name__} has no module outside its encoder to train as a head")
    return names


def embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The body's input embeddings (token/position tables or an image stem); [] when none is found."""
    base = model.base_model
    for names in EMBEDDING_NAMES:
        modules = [getattr(base, name, None) for name in names]
        if all(isinstance(m, nn.Module) for m in modules):
            return modules
    return []


def _embeddings(model: nn.Module) -> list[nn.Module]:
    modules = embedding_modules(model)
    if not modules:
        known = ", ".join("+".join(names) for names in EMBEDDING_NAMES)
        raise TextftError(
            f"mode=freeze_embeddings: {type(model).__name__} has no embeddings under a known name ({known}); "
            "use mode=full or head_only"
        )
    return modules


def _body_layers(model: nn.Module, types: tuple[type, ...]) -> list[str]:
    """Full names of the body's layers of `types`, the head excluded (it trains in full through modules_to_save)."""
    head = tuple(head_module_names(model))
    prefix = f"{model.base_model_prefix}."
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, types) and name.startswith(prefix) and not name.startswith(head)
    ]


def _convolutions(model: nn.Module) -> list[str]:
    """A CNN's LoRA targets: the body's plain (ungrouped) convolutions and pointwise linear layers after the stem.

    Depthwise convolutions (ConvNeXt's dwconv, groups > 1) are left out: peft cannot merge LoRA into them.
    """
    stem = {id(p) for m in embedding_modules(model) for p in m.parameters()}
    return [
        name
        for name in _body_layers(model, (nn.Conv2d, nn.Linear))
        if getattr(model.get_submodule(name), "groups", 1) == 1
        and not {id(p) for p in model.get_submodule(name).parameters()} & stem
    ]


def _batch_norms(model: nn.Module) -> list[str]:
    """Names of the body's batch norms (ResNet): training updates their running statistics, so they are saved with a
    LoRA adapter too; else the adapter directory would predict with the base's statistics, unlike the trained model."""
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    return sorted({name.rsplit(".", 1)[-1] for name in _body_layers(model, norms)})


def lora_targets(model: nn.Module, lora: LoraConfig) -> list[str] | str:
    if lora.target_modules == "all-linear":
        return _body_layers(model, _projections())
    if lora.target_modules != "auto":
        return list(lora.target_modules)
    projections = {name.rsplit(".", 1)[-1] for name in _body_layers(model, _projections())}
    for names in QUERY_VALUE_NAMES:
        if set(names) <= projections:
            return list(names)
    if any(isinstance(m, nn.Conv2d) for m in model.base_model.modules()):  # a CNN (ResNet, ConvNeXt): no attention
        return _convolutions(model)
    raise TextftError(
        f"lora.target_modules=auto finds no query/value projections in model type '{model.config.model_type}'; "
        f"set lora.target_modules=all-linear or a list of module names"
    )


def apply_mode(model: nn.Module, mode: str, lora: LoraConfig | None = None) -> nn.Module:
    """Set requires_grad for `mode` (or wrap in LoRA adapters) and return the model to train."""
    if mode == "lora":
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model
        from transformers.pytorch_utils import Conv1D

        lora = lora or LoraConfig()
        config = PeftLoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora_targets(model, lora),
            # GPT-2's projections are Conv1D, whose weight is stored (in, out): peft must know, else it warns and guesses
            fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.base_model.modules()),
            # the new head trains in full and is saved with the adapter (else it is lost on reload: peft #577, #1488)
            modules_to_save=[name.split(".")[-1] for name in head_module_names(model)] + _batch_norms(model),
        )
        model = get_peft_model(model, config)
    else:
        model.requires_grad_(mode != "head_only")
        if mode == "freeze_embeddings":
            for module in _embeddings(model):
                module.requires_grad_(False)
        elif mode == "head_only":
            for name in head_module_names(model):
                model.get_submodule(name).requires_grad_(True)
    trainable, total = count_parameters(model)
    log.info(
        "mode=%s: %s of %s parameters train (%.2f%%)", mode, f"{trainable:,}", f"{total:,}", 100 * trainable / total
    )
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; LoRA's frozen copies of the head count once."""
    seen: set[int] = set()
    trainable = total = 0
    for name, p in model.named_parameters():
        if id(p) in seen or "original_module" in name:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
