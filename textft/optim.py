"""Transfer-learning optimisation: per-group learning rates (head LR, layer-wise decay) and gradual unfreezing.

The body is split into depth groups by parameter name, which covers BERT, RoBERTa, ELECTRA, DeBERTa, DINOv2
(`<encoder>.encoder.layer.N.`), DistilBERT (`transformer.layer.N.`), ViT/DeiT, ModernBERT and the decoders Llama, Qwen,
Mistral, Gemma (`layers.N.`), GPT-2 (`h.N.`), and the staged vision bodies Swin (`layers.N.`), ConvNeXt and ResNet
(`stages.N.`: one group per stage), LoRA-wrapped or not:

    head        the modules of textft.modes.head_module_names (classifier, pre_classifier, BERT's pooler, `score`)
    layer N     body block N (0 = lowest); parameters of the body after the last block (a final norm) go with the top
    embeddings  below block 0: textft.modes.embedding_modules, and layers named *embedding* (ELECTRA's projection)

ALBERT has no blocks to tell apart (one layer, shared by every depth): layer-wise decay is refused for it, and gradual
unfreezing treats its whole body as one block.

Layer-wise decay (Sun et al. 2019): the top block trains at train.learning_rate, each block below at `layer_decay`
times the one above, the embeddings one step below block 0. The head trains at optim.head_lr (else train.learning_rate).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable

from torch import nn
from transformers import TrainerCallback

from textft.config import OptimConfig, TextftError, UnfreezeConfig
from textft.modes import embedding_modules, head_module_names

log = logging.getLogger("textft")

# the first (outermost) match is the block: ConvNeXt's `stages.1.layers.0.` is stage 1
LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layers?|h|stages)\.(\d+)\.")
HEAD, EMBEDDINGS = "head", "embeddings"


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (head names are relative to it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def depth_groups(model: nn.Module) -> tuple[dict[str, str | int], int]:
    """Each parameter name -> 'head', 'embeddings' or its body block index; and the number of blocks.

    A body without numbered blocks (ALBERT) has 0 blocks: all its parameters but the embeddings are in group 0.
    """
    inner = _unwrap(model)
    heads = {name: {id(p) for p in inner.get_submodule(name).parameters()} for name in head_module_names(inner)}
    # the body is the encoder minus head modules inside it (BERT's pooler); a head parameter tied to it (an MLM decoder
    # tied to the word embeddings) stays in the body
    in_encoder = set().union(*(ids for name, ids in heads.items() if name.startswith(f"{inner.base_model_prefix}.")))
    body_ids = {id(p) for p in inner.base_model.parameters()} - in_encoder
    head_ids = set().union(*heads.values()) - body_ids
    embedding_ids = {id(p) for m in embedding_modules(inner) for p in m.parameters()}
    groups: dict[str, str | int] = {}
    top: list[str] = []
    for name, p in model.named_parameters():
        match = LAYER_PATTERN.search(name)
        if id(p) in head_ids:
            groups[name] = HEAD
        elif match:
            groups[name] = int(match.group(1))
        elif id(p) in embedding_ids or "embedding" in name.rpartition(".")[0]:  # e.g. ELECTRA's embeddings_project
            groups[name] = EMBEDDINGS
        else:
            top.append(name)
    num_layers = 1 + max((g for g in groups.values() if isinstance(g, int)), default=-1)
    groups.update({name: max(num_layers - 1, 0) for name in top})
    return groups, num_layers


def no_blocks_error(model: nn.Module, option: str) -> TextftError:
    inner = _unwrap(model)
    why = (
        "ALBERT shares one encoder layer across all depths"
        if inner.config.model_type == "albert"
        else "no numbered body blocks (*.layer.N.*, *.layers.N.*, *.h.N.*, *.stages.N.*) were found"
    )
    return TextftError(f"{option}: {type(inner).__name__} cannot use it: {why}, so there are no layers to tell apart")


def lr_scale(group: str | int, num_layers: int, layer_decay: float) -> float:
    """The learning-rate multiplier of a body group: decay^(distance below the top block)."""
    depth = num_layers if group == EMBEDDINGS else num_layers - 1 - int(group)
    return layer_decay**depth


def param_groups(
    model: nn.Module, optim: OptimConfig, learning_rate: float, weight_decay: float, decay_names: Iterable[str]
) -> list[dict]:
    """Optimizer parameter groups: one per (learning rate, weight decay) pair, frozen parameters included.

    Frozen parameters are listed too: gradual unfreezing turns them on later, and an optimizer whose groups never
    change keeps its state and the LR schedule consistent (and resumable). Until then they get no gradient, and
    torch's Adam/AdamW skip a parameter without a gradient entirely: no moment update, no weight decay.
    """
    decay_names = set(decay_names)
    groups, num_layers = depth_groups(model)
    if optim.layer_decay is not None and num_layers == 0:
        raise no_blocks_error(model, "optim.layer_decay")
    head_lr = optim.head_lr if optim.head_lr is not None else learning_rate
    layer_decay = optim.layer_decay if optim.layer_decay is not None else 1.0
    out: dict[tuple[float, float], dict] = {}
    for name, p in model.named_parameters():
        group = groups[name]
        lr = head_lr if group == HEAD else learning_rate * lr_scale(group, num_layers, layer_decay)
        wd = weight_decay if name in decay_names else 0.0
        entry = out.setdefault((lr, wd), {"params": [], "names": [], "lr": lr, "weight_decay": wd})
        entry["params"].append(p)
        entry["names"].append(name)
    # the group at train.learning_rate first: the Trainer logs the first group's learning rate
    return sorted(out.values(), key=lambda g: g["lr"] != learning_rate)


def build_optimizer(trainer, optim: OptimConfig):
    """The Trainer's own optimizer class (train.optim, e.g. AdamW) over textft's groups; assign it to trainer.optimizer."""
    model, args = trainer.model, trainer.args
    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(args, model)
    decay_names = trainer.get_decay_parameter_names(model)
    groups = param_groups(model, optim, args.learning_rate, args.weight_decay, decay_names)
    for g in groups:
        log.info("optimizer group: lr %.3g, weight decay %g, %d tensors", g["lr"], g["weight_decay"], len(g["params"]))
    return optimizer_cls([{k: v for k, v in g.items() if k != "names"} for g in groups], **kwargs)


def needs_optimizer(cfg) -> bool:
    """Whether the recipe asks for textft's parameter groups instead of the Trainer's default optimizer."""
    return cfg.optim.head_lr is not None or cfg.optim.layer_decay is not None or unfreeze_enabled(cfg.unfreeze)


def unfreeze_enabled(unfreeze: UnfreezeConfig) -> bool:
    return unfreeze.stage_steps > 0 or unfreeze.stage_epochs > 0


class GradualUnfreezing(TrainerCallback):
    """Train the head alone for one stage, then unfreeze the body from the top: `layers_per_stage` blocks per stage
    (0: the whole body at once), the embeddings with the lowest block.

    Parameters stay in the optimizer throughout (see param_groups): frozen ones get no gradient and no update. Only the
    parameters the mode made trainable are ever unfrozen (mode=freeze_embeddings keeps its embeddings frozen).
    """

    def __init__(self, model: nn.Module, unfreeze: UnfreezeConfig):
        self.unfreeze = unfreeze
        groups, num_layers = depth_groups(model)
        self.num_layers = max(num_layers, 1)  # ALBERT: its one shared layer is the whole body, unfrozen at once
        params = dict(model.named_parameters())
        # rank of each trainable body parameter: 1 = top block, ..., num_layers = lowest block and the embeddings
        self.rank = {
            params[n]: (self.num_layers if g == EMBEDDINGS else self.num_layers - int(g))
            for n, g in groups.items()
            if g != HEAD and params[n].requires_grad
        }
        self.per_stage = unfreeze.layers_per_stage or self.num_layers
        self.last_stage = math.ceil(self.num_layers / self.per_stage)
        self.stage = -1
        self.set_stage(0)

    def stage_length(self, state) -> int:
        if self.unfreeze.stage_steps > 0:
            return self.unfreeze.stage_steps
        steps_per_epoch = state.max_steps / max(state.num_train_epochs, 1)
        return max(1, math.ceil(self.unfreeze.stage_epochs * steps_per_epoch))

    def set_stage(self, stage: int) -> None:
        stage = min(stage, self.last_stage)
        if stage == self.stage:
            return
        depth = min(stage * self.per_stage, self.num_layers)  # body blocks trainable from the top
        for p, rank in self.rank.items():
            p.requires_grad_(rank <= depth)
        self.stage = stage
        trainable = sum(p.numel() for p, rank in self.rank.items() if rank <= depth)
        log.info(
            "unfreeze stage %d: top %d of %d blocks train (%s body parameters)",
            stage,
            depth,
            self.num_layers,
            f"{trainable:,}",
        )

    def on_train_begin(self, args, state, control, **kwargs):
        if args.world_size > 1:
            # DDP registers the trainable parameters once, when it wraps the model: later-unfrozen ones would not sync
            raise TextftError("unfreeze.* works in single-process runs only; remove it or launch one process")
        self.set_stage(state.global_step // self.stage_length(state))  # also right when resuming from a checkpoint

    def on_step_begin(self, args, state, control, **kwargs):
        self.set_stage(state.global_step // self.stage_length(state))
