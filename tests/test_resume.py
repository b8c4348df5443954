"""Resume after kill -9: the resumed run ends with exactly the weights of an uninterrupted one (image track, LoRA)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, tiny_overrides
from safetensors.torch import load_file
from test_image import TINY_VIT, image_folder  # noqa: F401 (a fixture)

from textft.config import TextftError
from textft.train import main

# runs textft-train, killing itself with SIGKILL right after the checkpoint of step TEXTFT_KILL_AT is written
KILLED_RUN = """
import os, signal, sys
from transformers import TrainerCallback
import textft.trainer

class KillAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == int(os.environ["TEXTFT_KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)

class KilledTrainer(textft.trainer.TextftTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(KillAfterSave())

textft.trainer.TextftTrainer = KilledTrainer
from textft.train import main
main(sys.argv[1:])
"""


def kill_after_step(step: int, argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TEXTFT_KILL_AT": str(step)}
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, *argv], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == -9, done.stderr[-3000:]


def assert_same_tensors(a_file: Path, b_file: Path) -> None:
    a, b = load_file(a_file), load_file(b_file)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[0]}"


def steps(output_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (output_dir / "checkpoints").glob("checkpoint-*"))


def assert_resume_matches_uninterrupted(tmp_path: Path, argv: list[str]) -> None:
    """Train 2 epochs; train again, killed right after the first epoch's checkpoint; resume; compare final weights."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    main([*argv, f"output_dir={whole}"])
    first, last = steps(whole)  # one checkpoint an epoch
    kill_after_step(first, [*argv, f"output_dir={resumed}"])
    assert steps(resumed) == [first] and not (resumed / "metrics.json").exists()
    main([*argv, f"output_dir={resumed}", "train.resume_from_checkpoint=last"])
    state = json.loads((resumed / "checkpoints" / f"checkpoint-{last}" / "trainer_state.json").read_text())
    assert state["global_step"] == last and state["log_history"][0]["step"] <= first  # continued, not restarted
    assert_same_tensors(whole / "model.safetensors", resumed / "model.safetensors")


def test_image_vit_resumes_after_kill_to_the_weights_of_an_uninterrupted_run(image_folder, tmp_path):  # noqa: F811
    # a scratch ViT saves its checkpoints under transformers 5's legacy names (encoder.layer.N.attention.attention.*)
    recipe = tmp_path / "tiny_vit.yaml"
    recipe.write_text(
        json.dumps(
            {
                "task": "image",
                "model": {"name_or_path": "vit", "init": "scratch", "config": TINY_VIT},
                "data": {"dataset": str(image_folder), "val_split": 0.25},
                "image": {"crop_scale": [0.8, 1.0], "horizontal_flip": True},  # random: the RNG state must resume too
                "train": {
                    "num_train_epochs": 2,
                    "learning_rate": 3e-3,
                    "per_device_train_batch_size": 12,
                    "load_best_model_at_end": False,  # the final weights are the last step's
                    "use_cpu": True,
                },
            }
        )
    )
    assert_resume_matches_uninterrupted(tmp_path, [f"recipe={recipe}"])


def test_lora_resumes_after_kill_to_the_weights_of_an_uninterrupted_run(tiny_models, keyword_files, tmp_path):
    settings = {"mode": "lora", "train.use_cpu": "true", "train.load_best_model_at_end": "false"}
    argv = [
        a for a in tiny_overrides(tiny_models["bert"], keyword_files, tmp_path, **settings) if "output_dir" not in a
    ]
    assert_resume_matches_uninterrupted(tmp_path, ["recipe=bbc_minilm", *argv])
    adapter = Path("adapter") / "adapter_model.safetensors"
    assert_same_tensors(tmp_path / "whole" / adapter, tmp_path / "resumed" / adapter)


def test_a_checkpoint_of_another_model_is_an_error_not_a_partial_load(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification

    from textft.trainer import restore_weights

    other = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2))
    other.save_pretrained(tmp_path / "other")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=2)
    with pytest.raises(TextftError, match=r"checkpoint .*other: \d+ of \d+ tensors could not be restored"):
        restore_weights(model, tmp_path / "other")
