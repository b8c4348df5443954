"""What a training run prints: its logs with plain numbers."""

from __future__ import annotations

from transformers import ProgressCallback


class NumericProgress(ProgressCallback):
    """The Trainer's progress bar, logging {'loss': 1.546, ...} instead of transformers 5's {'loss': '1.546', ...}."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None:
            shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in (logs or {}).items()}
            shown.pop("total_flos", None)
            self.training_bar.write(str(shown))


def use_numeric_progress(trainer) -> None:
    """Swap the Trainer's progress bar for NumericProgress (when it has one: disable_tqdm=true prints plain dicts)."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(NumericProgress)
