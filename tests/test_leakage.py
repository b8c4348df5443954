"""Train rows whose input is also held out are counted and (by default) removed; a class with no training row is an error."""

from __future__ import annotations

import io
import json
import logging

import pytest
from conftest import keyword_rows, tiny_overrides, write_csv

from textft.config import TextftError, load_recipe
from textft.data import load_splits
from textft.leakage import remove_shared_rows
from textft.train import run


def unique_rows(n: int, start: int, seed: int) -> list[dict]:
    return [{"text": f"item {start + i} {r['text']}", "label": r["label"]} for i, r in enumerate(keyword_rows(n, seed))]


@pytest.fixture()
def leaky_files(tmp_path) -> dict[str, str]:
    """60 train rows plus 5 copies of test rows (2 with other spacing) and 3 of validation rows."""
    test, validation = unique_rows(30, 100, seed=1), unique_rows(20, 200, seed=2)
    copies = [dict(r) for r in test[:5] + validation[:3]]
    for r in copies[:2]:
        r["text"] = "  " + r["text"].replace(" ", "   ") + "\n"
    return {
        "train": str(write_csv(tmp_path / "train.csv", unique_rows(60, 0, seed=0) + copies)),
        "validation": str(write_csv(tmp_path / "validation.csv", validation)),
        "test": str(write_csv(tmp_path / "test.csv", test)),
    }


def recipe(tiny_models, files, tmp_path, *extra: str):
    overrides = tiny_overrides(tiny_models["bert"], files, tmp_path / "run", **{"train.use_cpu": "true"})
    return load_recipe("bbc_minilm", [*overrides, f"data.files.validation={files['validation']}", *extra])


def test_texts_shared_with_validation_or_test_are_counted_and_removed_from_train(
    tiny_models, leaky_files, tmp_path, caplog
):
    cfg = recipe(tiny_models, leaky_files, tmp_path)
    with caplog.at_level(logging.WARNING, logger="textft"):
        splits, counts = remove_shared_rows(load_splits(cfg)[0], cfg)
    assert counts == {"leak_train_rows_in_validation": 3, "leak_train_rows_in_test": 5, "leak_train_rows_removed": 8}
    assert "8 train rows have texts also held out (3 in validation, 5 in test): removed" in caplog.text
    held_out = {" ".join(t.split()) for s in ("validation", "test") for t in splits[s]["text"]}
    assert len(splits["train"]) == 60 and not held_out & {" ".join(t.split()) for t in splits["train"]["text"]}

    keep = recipe(tiny_models, leaky_files, tmp_path, "data.dedup=false")
    kept, counts = remove_shared_rows(load_splits(keep)[0], keep)
    assert counts["leak_train_rows_removed"] == 0 and len(kept["train"]) == 68


def test_the_number_removed_is_in_metrics_json(tiny_models, leaky_files, tmp_path):
    run(recipe(tiny_models, leaky_files, tmp_path, "train.num_train_epochs=1"))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["leak_train_rows_removed"] == 8 and metrics["leak_train_rows_in_test"] == 5


def test_identical_image_bytes_are_leakage(tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Image
    from PIL import Image as PILImage

    def png(shade: int) -> bytes:
        buffer = io.BytesIO()
        PILImage.new("RGB", (4, 4), (shade, 0, 0)).save(buffer, format="PNG")
        return buffer.getvalue()

    def split(shades: list[int]) -> Dataset:
        ds = Dataset.from_dict({"image": [{"bytes": png(s), "path": None} for s in shades], "label": [0] * len(shades)})
        return ds.cast_column("image", Image(decode=False)).cast_column("label", ClassLabel(names=["red"]))

    cfg = load_recipe("fashion_mnist_vit", ["data.dataset=unused"])
    splits = DatasetDict({"train": split([1, 2, 3, 4, 5]), "validation": split([6]), "test": split([2, 5, 7])})
    splits, counts = remove_shared_rows(splits, cfg)
    assert counts["leak_train_rows_in_test"] == 2 and counts["leak_train_rows_removed"] == 2
    assert len(splits["train"]) == 3


def test_a_class_without_training_rows_is_a_one_line_error(tiny_models, tmp_path):
    rows = [{"text": f"row {i} " + r["text"], "label": i % 3} for i, r in enumerate(keyword_rows(60, seed=0))]
    files = {
        "train": str(write_csv(tmp_path / "train.csv", rows)),
        "test": str(write_csv(tmp_path / "t.csv", rows[:9])),
    }
    overrides = tiny_overrides(tiny_models["bert"], files, tmp_path / "run", **{"train.use_cpu": "true"})
    cfg = load_recipe("bbc_minilm", [*overrides, "data.label_names=[a,b,c,d]"])
    with pytest.raises(TextftError, match=r"class 'd' has no training example in .*train.csv"):
        run(cfg)
