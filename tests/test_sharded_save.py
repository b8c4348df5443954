"""Saving a model whose weights are sharded (FSDP2, 2 CPU processes over gloo): every process takes part in gathering
them, the main process writes one ordinary model (LoRA: adapter/ and the merged model), and pipeline() loads it.

accelerate 1.15 turns FSDP on only for GPU process groups, so on CPU the model is sharded with torch's fully_shard and
the Trainer is a stand-in exposing what textft.train.save_trained_model uses; its gathering is accelerate's FSDP2 one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TOPICS, tiny_overrides
from safetensors.torch import load_file

WORKER = """
import copy, json, sys
from pathlib import Path
import torch, torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from transformers import AutoTokenizer
from textft.config import load_recipe
from textft.model import build_model
from textft.modes import apply_mode
from textft.train import save_model, save_trained_model

class FSDP2Accelerator:
    def unwrap_model(self, model):
        return model

    def get_state_dict(self, model):  # what accelerate's get_state_dict does for FSDP2
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)

class ShardedTrainer:
    is_fsdp_enabled, is_deepspeed_enabled, deepspeed = True, False, None

    def __init__(self, model):
        self.model, self.accelerator = model, FSDP2Accelerator()

    def is_world_process_zero(self):
        return dist.get_rank() == 0

dist.init_process_group("gloo")
overrides, out = json.loads(sys.argv[1]), Path(sys.argv[2])
cfg = load_recipe("bbc_minilm", overrides)
torch.manual_seed(0)
model = apply_mode(build_model(cfg, ["politics", "sport", "tech"]), cfg.mode, cfg.lora)
with torch.no_grad():  # trained weights: every trainable tensor moved, the LoRA B matrices included
    for p in model.parameters():
        if p.requires_grad:
            p.add_(torch.randn_like(p) * 0.02)
tokenizer = AutoTokenizer.from_pretrained(cfg.model.name_or_path)
if dist.get_rank() == 0:
    save_model(copy.deepcopy(model), tokenizer, cfg, out / "unsharded")
encoder = model.get_base_model().bert if cfg.mode == "lora" else model.bert
for layer in encoder.encoder.layer:
    fully_shard(layer)
fully_shard(model)
assert any(type(p).__name__ == "DTensor" for p in model.parameters())
save_trained_model(ShardedTrainer(model), tokenizer, cfg, out / "sharded")
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_a_model_sharded_over_two_processes_saves_whole_and_loads_in_pipeline(
    tiny_models, keyword_files, tmp_path, mode
):
    from transformers import pipeline

    overrides = tiny_overrides(tiny_models["bert"], keyword_files, tmp_path, mode=mode)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
           sys.executable, "-c", WORKER, json.dumps(overrides), str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    sharded, unsharded = (
        load_file(tmp_path / "sharded" / "model.safetensors"),
        load_file(tmp_path / "unsharded" / "model.safetensors"),
    )
    assert sharded.keys() == unsharded.keys()
    assert all(torch.equal(sharded[k], unsharded[k]) for k in sharded)
    assert not list((tmp_path / "sharded").rglob("*.bin"))
    config = json.loads((tmp_path / "sharded" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]  # not FSDP2's FSDPBertForSequenceClassification
    if mode == "lora":
        adapter = load_file(tmp_path / "sharded" / "adapter" / "adapter_model.safetensors")
        assert any("lora_B" in k for k in adapter) and any("classifier" in k for k in adapter)
    classify = pipeline("text-classification", model=str(tmp_path / "sharded"))
    assert all(p["label"] in TOPICS for p in classify(["the football match", "a new computer"]))
