"""train.report_to=tensorboard and trackio, both local and offline: the run's recipe is logged as its config."""

from __future__ import annotations

import sys

from conftest import tiny_overrides

from textft.config import load_recipe
from textft.train import run


def _point_trackio_at(folder, monkeypatch) -> None:
    """trackio reads TRACKIO_DIR when imported; point it (and modules that copied it) at a test folder."""
    monkeypatch.setenv("TRACKIO_DIR", str(folder))
    for name, module in list(sys.modules.items()):
        if name.startswith("trackio") and hasattr(module, "TRACKIO_DIR"):
            monkeypatch.setattr(module, "TRACKIO_DIR", folder)


def test_tensorboard_and_trackio_log_metrics_and_the_recipe(tiny_models, keyword_files, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _point_trackio_at(tmp_path / "trackio", monkeypatch)
    out = tmp_path / "run"
    overrides = tiny_overrides(tiny_models["bert"], keyword_files, out, **{"train.num_train_epochs": "1"})
    overrides += [
        "train.report_to=[tensorboard,trackio]",
        "train.project=textft-test",
        "train.run_name=tiny",
        "lora.r=4",
    ]
    run(load_recipe("bbc_minilm", overrides))

    # tensorboard: event files under the checkpoints folder, with the loss curve and the recipe as a text
    (events,) = {p.parent for p in (out / "checkpoints" / "runs").rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(events), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    recipe_text = acc.Tensors("recipe/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "r: 4" in recipe_text and f"output_dir: {out}" in recipe_text

    # trackio: a local project database whose run config holds the flattened recipe
    from trackio.sqlite_storage import SQLiteStorage

    config = SQLiteStorage.get_run_config("textft-test", "tiny")
    assert config["recipe.lora.r"] == 4 and config["recipe.model.name_or_path"] == tiny_models["bert"]
    logged = SQLiteStorage.get_logs("textft-test", "tiny")
    assert any("train/loss" in entry for entry in logged)
