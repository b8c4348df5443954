"""textft-export: ONNX with dynamic batch and sequence axes, parity on real rows, and textft-predict through ORT."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import tiny_vit_recipe

from textft.export import OnnxClassifier
from textft.export import main as export_main
from textft.predict import main as predict_main
from textft.train import main as train_main


def test_export_keeps_labels_and_matches_pytorch_on_real_rows(full_run, keyword_files, tmp_path, capsys):
    export_main([str(full_run), f"out={tmp_path / 'onnx'}", "rows=30", "batch_size=7"])
    report = json.loads((tmp_path / "onnx" / "export_report.json").read_text())
    assert report["rows"] == 30 and report["same_label_rows"] == 30 and report["max_prob_diff"] < 1e-4
    assert report["parity_input"] == keyword_files["test"]
    onnx_dir = tmp_path / "onnx"
    for name in ("model.onnx", "config.json", "tokenizer.json", "recipe.yaml"):
        assert (onnx_dir / name).is_file(), name
    model = OnnxClassifier(onnx_dir)
    assert sorted(model.config.id2label.values()) == ["politics", "sport", "tech"]
    assert model.session.get_inputs()[0].shape == ["batch", "sequence"]
    capsys.readouterr()

    # textft-predict runs the export with ONNX Runtime and agrees with the PyTorch run directory
    scored = {}
    for name, model_dir in (("torch", full_run), ("onnx", onnx_dir)):
        output = tmp_path / f"{name}.csv"
        # fp32 for the PyTorch side: on a CPU with native bf16, dtype=auto holds the weights in bf16 (~1e-3 apart)
        fp32 = ["dtype=float32"] if name == "torch" else []
        predict_main(
            [f"model={model_dir}", f"input={keyword_files['test']}", f"output={output}", "progress=false", *fp32]
        )
        scored[name] = pd.read_csv(output)
    assert (scored["torch"]["pred_label"] == scored["onnx"]["pred_label"]).all()
    assert (scored["torch"]["pred_score"] - scored["onnx"]["pred_score"]).abs().max() < 1e-4


def test_export_of_a_merged_lora_run(lora_run, tmp_path):
    export_main([str(lora_run), f"out={tmp_path / 'onnx'}", "rows=12"])
    report = json.loads((tmp_path / "onnx" / "export_report.json").read_text())
    assert report["same_label_rows"] == 12


def test_export_of_an_image_model(square_image_files, tmp_path):
    train_main([f"recipe={tiny_vit_recipe(square_image_files, tmp_path / 'vit', tmp_path)}", "train.use_cpu=true"])
    export_main([str(tmp_path / "vit"), "rows=8", "batch_size=3"])
    report = json.loads((tmp_path / "vit" / "onnx" / "export_report.json").read_text())
    assert report["inputs"] == ["pixel_values"] and report["same_label_rows"] == 8
    assert (tmp_path / "vit" / "onnx" / "preprocessor_config.json").is_file()


def test_export_of_a_folder_without_a_model_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_main([str(tmp_path)])
    assert "has no config.json" in capsys.readouterr().err
