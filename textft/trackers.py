"""Experiment trackers (`train.report_to=tensorboard|trackio`, both local and offline): the run's recipe as its config.

The Trainer's own tracker callbacks log TrainingArguments and the model config; `RecipeToTrackers` adds the resolved
recipe (data, mode, LoRA, optim, ...), so a tracked run says what textft recipe made it.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from textft.config import RecipeConfig, to_yaml


def flat_recipe(cfg: RecipeConfig) -> dict[str, Any]:
    """The resolved recipe as {"recipe.data.max_length": 128, ...} (lists and dicts of values stay values)."""
    from omegaconf import OmegaConf

    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}")
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True), "recipe")
    return out


class RecipeToTrackers(TrainerCallback):
    """Put the recipe into the tracked run: TensorBoard gets a `recipe` text (YAML), trackio the run's config (flat
    `recipe.*` keys). It sits before the tracker callbacks: trackio stores a run's config with its first log, and the
    Trainer opens a new trackio run for the evaluations after training (on_predict); the recipe goes into each."""

    def __init__(self, cfg: RecipeConfig, trainer) -> None:
        self.cfg = cfg
        self.handler = trainer.callback_handler  # the tracker callbacks live there
        self.written: set[int] = set()  # TensorBoard writers that have the recipe

    def _open_trackio_runs(self, args, state, model) -> None:
        from transformers.integrations import TrackioCallback

        for callback in self.handler.callbacks:
            if isinstance(callback, TrackioCallback) and not callback._initialized:
                import trackio

                callback.setup(args, state, model)
                trackio.config.update(flat_recipe(self.cfg))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero:
            self._open_trackio_runs(args, state, model)

    def on_predict(self, args, state, control, model=None, **kwargs):  # the evaluations after training
        if state.is_world_process_zero:
            self._open_trackio_runs(args, state, model)

    def on_log(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        from transformers.integrations import TensorBoardCallback

        self._open_trackio_runs(args, state, model)
        for callback in self.handler.callbacks:
            writer = getattr(callback, "tb_writer", None) if isinstance(callback, TensorBoardCallback) else None
            if writer is not None and id(writer) not in self.written:
                writer.add_text("recipe", "```yaml\n" + to_yaml(self.cfg) + "```")
                self.written.add(id(writer))


def add_recipe_logging(trainer, cfg: RecipeConfig) -> None:
    """Give the trainer's trackers the recipe (a no-op when train.report_to is none)."""
    trainer.callback_handler.callbacks.insert(0, RecipeToTrackers(cfg, trainer))
