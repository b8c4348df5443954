"""End to end: recipe -> Trainer -> artifacts, for every mode; resume; the real MiniLM through `accelerate launch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TOPICS, tiny_overrides
from safetensors.torch import load_file

from textft.config import TextftError, load_recipe
from textft.train import run

METRIC_KEYS = {"eval_accuracy", "eval_f1_macro", "test_accuracy", "test_f1_macro", "train_runtime",
               "train_samples_per_second", "trainable_params", "total_params"}  # fmt: skip


def encoder_weights(path) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(path, "model.safetensors"))


@pytest.mark.parametrize("mode", ["full", "freeze_embeddings", "head_only", "lora"])
def test_every_mode_trains_saves_and_loads_in_pipeline_with_label_names(tiny_models, keyword_files, tmp_path, mode):
    from transformers import pipeline

    out = tmp_path / mode
    cfg = load_recipe("bbc_minilm", tiny_overrides(tiny_models["bert"], keyword_files, out, mode=mode))
    metrics = run(cfg)

    saved = json.loads((out / "metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    assert METRIC_KEYS <= set(saved) and {k: saved[k] for k in numbers} == pytest.approx(numbers)
    assert saved["train_sampling"] == metrics["train_sampling"] and saved["train_sampling"]["asked"] == "auto"
    assert 0 < saved["trainable_params"] <= saved["total_params"]
    assert (out / "confusion_matrix.png").stat().st_size > 0 and (out / "recipe.yaml").is_file()
    assert load_recipe(str(out / "recipe.yaml")).mode == mode
    assert not list(out.glob("*.bin")) and not (out / ".staging").exists()

    # frozen weights are exactly the pretrained ones; trained ones moved
    before, after = encoder_weights(tiny_models["bert"]), encoder_weights(out)
    unchanged = {k for k, v in before.items() if torch.equal(v, after[f"bert.{k}"])}
    encoder_layers = {k for k in before if k.startswith("encoder.")}
    if mode == "head_only":
        assert unchanged == {k for k in before if not k.startswith("pooler.")}
    elif mode == "freeze_embeddings":
        assert unchanged == {k for k in before if k.startswith("embeddings.")}
    elif mode == "lora":  # merged: only the LoRA targets (query/value) and the head moved
        assert {k for k in before if k not in unchanged} == {
            k for k in encoder_layers if k.endswith((".query.weight", ".value.weight"))
        } | {k for k in before if k.startswith("pooler.")}
        assert (out / "adapter" / "adapter_config.json").is_file()
    else:
        assert not unchanged & encoder_layers

    classify = pipeline("text-classification", model=str(out))
    predictions = classify(["the football match", "a new computer"])
    assert all(p["label"] in TOPICS for p in predictions)


def test_resume_from_the_last_checkpoint_continues_the_step_count(tiny_models, keyword_files, tmp_path):
    common = tiny_overrides(tiny_models["bert"], keyword_files, tmp_path, **{"train.eval_strategy": "steps",
                            "train.eval_steps": "3", "train.save_steps": "3"})  # fmt: skip
    run(load_recipe("bbc_minilm", [*common, "train.max_steps=3"]))
    assert (tmp_path / "checkpoints" / "checkpoint-3").is_dir()
    run(load_recipe("bbc_minilm", [*common, "train.max_steps=6", "train.resume_from_checkpoint=last"]))
    state = json.loads((tmp_path / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["log_history"][0]["step"] <= 3  # history carried over from checkpoint-3

    with pytest.raises(TextftError, match="train.resume_from_checkpoint: /nope is not a checkpoint directory"):
        run(load_recipe("bbc_minilm", [*common, "train.resume_from_checkpoint=/nope"]))


@pytest.mark.slow
def test_cli_accelerate_launch_real_minilm_on_bbc_beats_chance(minilm_dir, bbc_files, tmp_path):
    """The headline command on the real pretrained MiniLM and real BBC articles (a subset: ~1 minute on 2 cores)."""
    from transformers import pipeline

    out = tmp_path / "bbc"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
           str(REPO / "textft" / "train.py"), "recipe=bbc_minilm", f"model.name_or_path={minilm_dir}",
           f"data.files.train={bbc_files['train']}", f"data.files.test={bbc_files['test']}",
           "data.max_train_samples=400", "data.max_eval_samples=150", "data.max_length=64",
           "train.num_train_epochs=2", f"output_dir={out}"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.7, metrics  # 5 balanced classes: chance is 0.2
    assert json.loads(result.stdout.strip().splitlines()[-1])["test_accuracy"] == round(metrics["test_accuracy"], 4)

    label = pipeline("text-classification", model=str(out))("The striker scored twice as United won the cup final.")[0]
    assert label["label"] == "sport"
