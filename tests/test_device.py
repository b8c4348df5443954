"""textft.device: the precision choice per device (capability probes replaced), and what it does to training and predict."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import keyword_rows, tiny_overrides, write_csv

from textft import device
from textft.cli import parse_settings
from textft.config import load_recipe
from textft.predict import PredictConfig, predict
from textft.train_args import train_arguments

CPUINFO = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx2 {extra}\n\nprocessor\t: 1\n"


@pytest.fixture
def cpu(monkeypatch):
    """cpu(flag): no GPU, and a CPU whose native-bf16 flag is `flag` (None: none)."""

    def make(flag: str | None) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(device, "_has_other_accelerator", lambda: False)
        monkeypatch.setattr(device, "cpu_bf16_support", lambda: flag)

    return make


@pytest.fixture
def gpu(monkeypatch):
    def make(bf16: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4" if not bf16 else "NVIDIA H100")

    return make


@pytest.mark.parametrize(
    "extra,expected",
    [("avx512f avx512_bf16", "avx512_bf16"), ("amx_tile amx_bf16 avx512_bf16", "amx_bf16"), ("avx512f", None)],
)
def test_the_bf16_flag_is_read_from_cpuinfo(extra, expected):
    assert device.bf16_flag(CPUINFO.format(extra=extra)) == expected


@pytest.mark.parametrize(
    "flag,predict_dtype,train_dtype",
    [("amx_bf16", "bfloat16", "bfloat16"), ("avx512_bf16", "bfloat16", "bfloat16"), (None, "float32", "float32")],
)
def test_cpu_choice_follows_native_bf16(cpu, flag, predict_dtype, train_dtype, monkeypatch):
    cpu(flag)
    assert device.predict_precision("cpu").dtype == predict_dtype
    for mode in ("full", "freeze_embeddings", "head_only", "lora"):  # all four measured as accurate under bf16
        assert device.train_precision(mode).dtype == train_dtype
    monkeypatch.setattr(device, "CPU_BF16_TRAIN_MODES", frozenset({"full"}))  # a mode not measured stays fp32
    lora = device.train_precision("lora")
    assert lora.dtype == "float32" and ("lora" in lora.reason if flag else True)


@pytest.mark.parametrize(
    "bf16,predict_dtype,train_dtype", [(True, "bfloat16", "bfloat16"), (False, "float16", "float32")]
)
def test_cuda_choice(gpu, bf16, predict_dtype, train_dtype):
    gpu(bf16)
    assert device.predict_precision("cuda:0").dtype == predict_dtype
    assert device.train_precision("full").dtype == train_dtype  # auto never picks fp16 (it needs a loss scaler)


def recipe(tmp_path, *extra: str):
    files = {"train": "train.csv", "test": "test.csv"}
    return load_recipe("bbc_minilm", tiny_overrides("unused", files, tmp_path, **dict(e.split("=", 1) for e in extra)))


def test_train_bf16_auto_follows_the_device_and_false_forces_fp32(cpu, tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    cpu("avx512_bf16")
    args = train_arguments(recipe(tmp_path))
    assert args["bf16"] is True and args["use_cpu"] is True  # the Trainer wants use_cpu for bf16 without a GPU
    assert train_arguments(recipe(tmp_path, "mode=head_only"))["bf16"] is True
    assert train_arguments(recipe(tmp_path, "train.bf16=false"))["bf16"] is False
    cpu(None)
    assert train_arguments(recipe(tmp_path))["bf16"] is False


def test_the_choice_is_logged_once(cpu, tmp_path, caplog, monkeypatch):
    cpu("amx_bf16")
    monkeypatch.setattr(device, "_announced", set())
    with caplog.at_level(logging.INFO, logger="textft"):
        train_arguments(recipe(tmp_path))
        train_arguments(recipe(tmp_path))
    lines = [r.getMessage() for r in caplog.records if "precision" in r.getMessage()]
    assert lines == ["training precision: bfloat16 on cpu (CPU with native bf16 (amx_bf16))"]


# ---- on a trained tiny model ------------------------------------------------------------------------------------------


def scored(run_dir, tmp_path, name: str, **settings) -> pd.DataFrame:
    inp = tmp_path / "in.csv"
    if not inp.exists():
        write_csv(inp, keyword_rows(60, seed=11))
    pairs = [f"model={run_dir}", f"input={inp}", f"output={tmp_path / name}", "progress=false", "batch_size=8"]
    predict(parse_settings(PredictConfig, pairs + [f"{k}={v}" for k, v in settings.items()], "textft-predict"))
    frame = pd.read_csv(tmp_path / name)
    return frame[[c for c in frame.columns if c.startswith("pred_prob_")]].to_numpy()


def test_bf16_predictions_agree_with_fp32(full_run, tmp_path):
    fp32 = scored(full_run, tmp_path, "fp32.csv", dtype="float32")
    bf16 = scored(full_run, tmp_path, "bf16.csv", dtype="bfloat16")
    diff = np.abs(fp32 - bf16).max()
    assert 0 < diff < 0.03  # bf16 computed (not fp32 again), and keeps ~3 significant digits
    top2 = np.sort(fp32, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * diff  # rows whose fp32 decision a difference of `diff` cannot flip
    assert clear.mean() > 0.5
    assert (fp32.argmax(1) == bf16.argmax(1))[clear].all()


def test_dtype_float32_on_a_bf16_cpu_gives_exactly_the_fp32_outputs(full_run, tmp_path, cpu):
    cpu("avx512_bf16")
    auto = scored(full_run, tmp_path, "auto.csv")
    forced = scored(full_run, tmp_path, "forced.csv", dtype="float32")
    cpu(None)  # a CPU without bf16: auto is fp32, today's path
    plain = scored(full_run, tmp_path, "plain.csv")
    assert np.array_equal(forced, plain)
    assert not np.array_equal(auto, plain)  # auto did change the path on the bf16 CPU


def test_bf16_false_trains_exactly_as_an_fp32_cpu_and_metrics_record_the_precision(
    cpu, tiny_models, keyword_files, tmp_path
):
    from textft.train import run

    def train(name: str, flag: str | None, *extra: str) -> tuple[dict, bytes]:
        cpu(flag)
        out = tmp_path / name
        settings = {"train.num_train_epochs": "1", **dict(e.split("=", 1) for e in extra)}
        run(load_recipe("bbc_minilm", tiny_overrides(tiny_models["bert"], keyword_files, out, **settings)))
        return json.loads((out / "metrics.json").read_text()), (out / "model.safetensors").read_bytes()

    plain, plain_weights = train("plain", None)
    forced, forced_weights = train("forced", "avx512_bf16", "train.bf16=false")
    auto, auto_weights = train("auto", "avx512_bf16")
    assert plain["precision"] == forced["precision"] == "fp32" and auto["precision"] == "bf16"
    assert forced_weights == plain_weights and forced["test_accuracy"] == plain["test_accuracy"]
    assert auto_weights != plain_weights
    assert abs(auto["train_loss"] - plain["train_loss"]) < 0.05  # the same training, in another precision


def test_a_bf16_stored_checkpoint_trains_with_fp32_master_weights(tiny_models, tmp_path):
    """transformers 5 loads a checkpoint in its stored dtype; textft holds trainable weights in fp32 all the same."""
    from transformers import AutoModel

    from textft.model import build_model

    stored = tmp_path / "bf16_checkpoint"
    AutoModel.from_pretrained(tiny_models["bert"]).to(torch.bfloat16).save_pretrained(stored)
    cfg = load_recipe("bbc_minilm", [f"model.name_or_path={stored}"])
    model = build_model(cfg, ["a", "b"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}
