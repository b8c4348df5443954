"""The HF Trainer, with checkpoint loading (resume and best model) that restores every saved tensor or fails, and
textft's batch order for text (textft.sampling: random, or length-grouped where random batches would pad a lot).

transformers 5 saves some models under their original weight names (ViT: `encoder.layer.N.attention.attention.query`)
while its modules are renamed (`layers.N.attention.q_proj`). The Trainer loads checkpoints with
`load_state_dict(strict=False)`, so on resume and at load_best_model_at_end such tensors are silently left as they were
(huggingface/transformers#43701, #48822): a tiny ViT resumed with 32 of its 40 tensors at their initial values.
Here a full model is loaded through `from_pretrained`, which converts the names, and a LoRA model's adapter is checked
tensor by tensor against its file after the Trainer loads it. FSDP and DeepSpeed keep their own loaders.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import RandomSampler
from transformers import Trainer

from textft.config import TextftError

ADAPTER_FILE = "adapter_model.safetensors"


def restore_weights(model, checkpoint: str | Path) -> None:
    """Load a checkpoint's weights into `model` in place, converting saved names as `from_pretrained` does.

    Raises a one-line TextftError when any tensor of the model is not in the checkpoint, or has another shape."""
    reloaded, info = type(model).from_pretrained(
        checkpoint, config=model.config, dtype=next(model.parameters()).dtype, output_loading_info=True
    )
    absent = sorted(info.get("missing_keys") or []) + sorted(k for k, *_ in info.get("mismatched_keys") or [])
    if absent:
        total = len(model.state_dict())
        raise TextftError(
            f"checkpoint {checkpoint}: {len(absent)} of {total} tensors could not be restored (e.g. {absent[0]}); "
            f"it was saved from another model: resume from a checkpoint of this run's recipe, or start over"
        )
    model.load_state_dict(reloaded.state_dict(), strict=True)


def check_adapter_restored(model, checkpoint: str | Path) -> None:
    """Every tensor in the checkpoint's adapter file is now in `model` with exactly that value, and none is missing."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    saved = load_file(Path(checkpoint) / ADAPTER_FILE)
    current = get_peft_model_state_dict(model)
    wrong = sorted(set(saved) ^ set(current)) or sorted(
        k for k, v in saved.items() if not torch.equal(v, current[k].detach().to(v.device, v.dtype))
    )
    if wrong:
        raise TextftError(
            f"checkpoint {checkpoint}: {len(wrong)} of {len(current)} adapter tensors could not be restored "
            f"(e.g. {wrong[0]}); resume from a checkpoint of this run's recipe, or start over"
        )


class TextftTrainer(Trainer):
    """Trainer whose resume and best-model reload restore exactly the saved weights, for every architecture, and whose
    text batches follow textft.sampling (`train_sampling_strategy`: auto, random or group_by_length)."""

    sampling: dict | None = None  # what train_sampling_strategy resolved to, for metrics.json

    def _get_train_sampler(self, train_dataset=None):
        from textft.sampling import GroupedSampler, resolve_sampling

        dataset = self.train_dataset if train_dataset is None else train_dataset
        asked = self.args.train_sampling_strategy
        if asked not in ("auto", "random", "group_by_length"):  # sequential, batch_rebalance: the Trainer's own
            return super()._get_train_sampler(train_dataset)
        lengths = _lengths(dataset, self.args.length_column_name)
        if self.sampling is None:  # once per run; every epoch re-enters here
            _, self.sampling = resolve_sampling(asked, lengths, self._train_batch_size)
        if self.sampling["strategy"] == "group_by_length" and lengths is not None:
            return GroupedSampler(lengths, self._train_batch_size, self.args.seed)
        return RandomSampler(dataset)  # what the Trainer uses for "random" (accelerate seeds it per epoch)

    def _get_eval_sampler(self, eval_dataset):
        from textft.sampling import SortedSampler

        lengths = _lengths(eval_dataset, self.args.length_column_name)
        if lengths is None or self.args.world_size > 1:
            return super()._get_eval_sampler(eval_dataset)
        return SortedSampler(lengths)  # longest first: little padding; predictions return with their labels

    def training_step(self, *args, **kwargs):
        from textft.device import variable_length_attention

        with variable_length_attention(self.args.device):  # the backward runs inside too
            return super().training_step(*args, **kwargs)

    def prediction_step(self, *args, **kwargs):
        from textft.device import variable_length_attention

        with variable_length_attention(self.args.device):
            return super().prediction_step(*args, **kwargs)

    def _own_loader(self) -> bool:
        return not (self.is_fsdp_enabled or self.is_deepspeed_enabled)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.model if model is None else model
        if not self._own_loader():
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        elif hasattr(model, "peft_config"):  # adapters are saved and loaded under the model's own names
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            check_adapter_restored(model, resume_from_checkpoint)
        else:
            restore_weights(model, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        if not self._own_loader():
            super()._load_best_model()
        elif hasattr(self.model, "peft_config"):
            super()._load_best_model()
            check_adapter_restored(self.model, best)
        else:
            restore_weights(self.model, best)


def _lengths(dataset, column: str) -> list[int] | None:
    """The dataset's token-count column (textft.text adds `length`), if it has one."""
    names = getattr(dataset, "column_names", None) or []
    return list(dataset[column]) if column in names else None
