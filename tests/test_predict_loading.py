"""textft-predict's model loading: a retrained model never resumes old parts; adapters merge in fp32; any base head."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import write_csv
from test_predict import prob_columns, read, reference_probs, run_predict, texts  # noqa: F401 (texts: a fixture)

from textft import predict as predict_module
from textft.cli import parse_settings
from textft.inference import load_classifier
from textft.predict import PredictConfig


def test_a_retrained_model_starts_over_instead_of_resuming_the_old_models_parts(full_run, texts, tmp_path, monkeypatch):  # noqa: F811
    from transformers import AutoModelForSequenceClassification

    model_dir = tmp_path / "run"
    shutil.copytree(full_run, model_dir)
    inp = write_csv(tmp_path / "in.csv", [{"text": t} for t in texts])
    real_assemble = predict_module.assemble

    def killed_before_assembling(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_module, "assemble", killed_before_assembling)  # every chunk scored, no output yet
    with pytest.raises(KeyboardInterrupt):
        run_predict(model_dir, inp, tmp_path / "out.csv", chunk_size=10)
    assert len(list((tmp_path / ".out.csv.parts").glob("part-*.parquet"))) == 5

    # the same run directory, retrained: other weights under the same path
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    with torch.no_grad():
        model.classifier.weight.mul_(-3.0)
    model.save_pretrained(model_dir)
    monkeypatch.setattr(predict_module, "assemble", real_assemble)
    summary = run_predict(model_dir, inp, tmp_path / "out.csv", chunk_size=10)
    assert summary["scored_now"] == len(texts)
    result = read(tmp_path / "out.csv")
    np.testing.assert_allclose(result[prob_columns(result)].to_numpy(), reference_probs(model_dir, texts), atol=1e-5)


def settings(model, **extra) -> PredictConfig:
    pairs = [f"model={model}", "input=x.csv", "output=y.csv", *(f"{k}={v}" for k, v in extra.items())]
    return parse_settings(PredictConfig, pairs, "textft-predict")


def test_an_adapter_merges_in_fp32_then_casts_like_the_saved_merged_model(lora_run):
    s = settings(lora_run, dtype="bfloat16", device="cpu")
    from_adapter, _ = load_classifier(lora_run / "adapter", "text", s)
    merged, _ = load_classifier(lora_run, "text", s)  # merged in fp32 when the run was saved
    assert next(from_adapter.parameters()).dtype == torch.bfloat16
    expected = merged.state_dict()
    different = [k for k, v in from_adapter.state_dict().items() if not torch.equal(v, expected[k])]
    assert not different, f"{len(different)} tensors differ from the fp32-merged model cast to bf16: {different[:3]}"


def test_an_adapter_on_a_base_classifier_of_another_class_count_loads(lora_run, tiny_models, texts, tmp_path):  # noqa: F811
    from transformers import AutoModelForSequenceClassification

    base = tmp_path / "base_with_5_classes"
    AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=5).save_pretrained(base)
    inp = write_csv(tmp_path / "in.csv", [{"text": t} for t in texts])
    run_predict(lora_run / "adapter", inp, tmp_path / "adapter.csv", base_model=base)
    run_predict(lora_run, inp, tmp_path / "merged.csv")
    adapter, merged = read(tmp_path / "adapter.csv"), read(tmp_path / "merged.csv")
    assert len(prob_columns(adapter)) == 3 and adapter["label"].tolist() == merged["label"].tolist()
    np.testing.assert_allclose(adapter[prob_columns(adapter)], merged[prob_columns(merged)], atol=1e-4)
