"""The image track: a tiny ViT through the same CLI, data checks, modes, LoRA reload, and image reading for prediction."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
from conftest import TINY_VIT_CONFIG
from PIL import Image

from textft.cli import parse_settings
from textft.config import TextftError, load_recipe
from textft.data import load_splits, prepare_splits
from textft.images import image_encoder, image_files, image_rows, open_image, random_resized_crop, to_rgb
from textft.model import build_model, load_processor
from textft.modes import apply_mode
from textft.train import main, save_model

SIZE = 16
TINY_VIT = TINY_VIT_CONFIG  # image_size SIZE
# red-ish vs blue-ish squares, stored in mixed modes (RGB, grayscale, RGBA, palette) like a scraped folder
COLORS = {"blue": (20, 30, 160), "red": (250, 80, 60)}  # apart in luminance too (grayscale copies)
MODES = ["RGB", "L", "RGBA", "P"]


def _image(label: str, rng: random.Random, mode: str) -> Image.Image:
    base = COLORS[label]
    image = Image.new("RGB", (20, 20), tuple(min(255, max(0, c + rng.randint(-25, 25))) for c in base))
    return image.convert(mode)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """An imagefolder (one folder per class) of 24 images per class in four modes, plus one corrupt file."""
    root = tmp_path_factory.mktemp("images")
    rng = random.Random(0)
    for label in COLORS:
        (root / label).mkdir()
        for i in range(24):
            _image(label, rng, MODES[i % len(MODES)]).save(root / label / f"{i}.png")
    (root / "red" / "broken.png").write_bytes(b"this is not a png")
    return root


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory, image_folder) -> Path:
    """A tiny ViT trained from scratch through the CLI: the source checkpoint of the other tests (and of a transfer)."""
    out = tmp_path_factory.mktemp("runs") / "source"
    recipe = out.parent / "tiny_vit.yaml"
    recipe.write_text(
        json.dumps(
            {
                "task": "image",
                "model": {"name_or_path": "vit", "init": "scratch", "config": TINY_VIT},
                "data": {"dataset": str(image_folder), "val_split": 0.25, "test_split": 0.25},
                "image": {"crop_scale": [0.8, 1.0], "horizontal_flip": True},
                "train": {
                    "num_train_epochs": 6,
                    "learning_rate": 3e-3,
                    "per_device_train_batch_size": 8,
                    "logging_steps": 5,
                },
                "output_dir": str(out),
            }
        )
    )
    main([f"recipe={recipe}"])
    return out


def _cfg(source: Path, image_folder: Path, *overrides: str):
    return load_recipe(
        "mnist_vit_transfer",
        [
            f"model.name_or_path={source}",
            f"data.dataset={image_folder}",
            "data.files.train=null",
            "data.files.test=null",
            *overrides,
        ],
    )


def test_scratch_vit_trains_end_to_end_through_the_cli(tiny_vit, caplog):
    metrics = json.loads((tiny_vit / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9
    config = json.loads((tiny_vit / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["blue", "red"]
    assert (tiny_vit / "preprocessor_config.json").is_file() and (tiny_vit / "model.safetensors").is_file()


def test_transfer_from_a_checkpoint_through_the_cli(tiny_vit, image_folder, tmp_path):
    """The transfer chain in miniature: the trained source, fine-tuned with head_only on the target data."""
    out = tmp_path / "transfer"
    main(
        [
            "recipe=mnist_vit_transfer_head_only",
            f"model.name_or_path={tiny_vit}",
            f"data.dataset={image_folder}",
            "data.files.train=null",
            "data.files.test=null",
            "data.test_split=0.25",
            "train.num_train_epochs=1",
            f"output_dir={out}",
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["trainable_params"] < metrics["total_params"] / 10
    assert metrics["test_accuracy"] >= 0.9  # the source's features already separate the classes


def test_unreadable_images_are_skipped_with_a_count(tiny_vit, image_folder, caplog):
    cfg = _cfg(tiny_vit, image_folder)
    with caplog.at_level(logging.WARNING, logger="textft"):
        splits, problem = load_splits(cfg)
        names = problem.label_names
    assert names == ["blue", "red"]
    assert sum(len(s) for s in splits.values()) == 48
    assert "skipped 1 of 49 rows" in caplog.text and "broken.png" in caplog.text


def test_mixed_modes_become_rgb_pixels_of_the_processor_size(tiny_vit, image_folder):
    cfg = _cfg(tiny_vit, image_folder)
    splits, _ = load_splits(cfg)
    inputs = prepare_splits(splits, load_processor(cfg), cfg)
    batch = inputs["train"][:8]
    assert batch["pixel_values"].shape == (8, 3, SIZE, SIZE)
    assert set(inputs["train"].column_names) == {"pixel_values", "label"}


def test_to_rgb_composites_transparency_on_white():
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("L", (4, 4), 7)).getpixel((0, 0)) == (7, 7, 7)
    assert to_rgb(Image.new("RGB", (4, 4)).convert("P")).mode == "RGB"


def test_random_resized_crop_gives_the_target_size():
    image = Image.new("RGB", (40, 30), (1, 2, 3))
    assert random_resized_crop(image, (16, 16), (0.5, 1.0), (0.75, 1.33)).size == (16, 16)


def test_missing_or_non_image_column_is_an_error(tiny_vit, image_folder):
    with pytest.raises(TextftError, match="data.image_column: column 'picture' not found"):
        load_splits(_cfg(tiny_vit, image_folder, "data.image_column=picture"))
    with pytest.raises(TextftError, match="holds .* not images"):
        load_splits(_cfg(tiny_vit, image_folder, "data.image_column=label", "data.label_column=label"))


def test_parquet_bytes_and_csv_paths_read_as_images(tiny_vit, image_folder, tmp_path):
    import pandas as pd

    paths = sorted(p for p in image_folder.rglob("*.png") if p.name != "broken.png")
    labels = [p.parent.name for p in paths]
    pd.DataFrame({"img": [p.read_bytes() for p in paths], "y": labels}).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame({"path": [str(p) for p in paths], "y": labels}).to_csv(tmp_path / "train.csv", index=False)
    for name, column in (("train.parquet", "img"), ("train.csv", "path")):
        cfg = _cfg(
            tiny_vit,
            image_folder,
            "data.dataset=null",
            f"data.files.train={tmp_path / name}",
            f"data.image_column={column}",
            "data.label_column=y",
        )
        splits, problem = load_splits(cfg)
        names = problem.label_names
        assert names == ["blue", "red"] and sum(len(s) for s in splits.values()) == len(paths)


def _changed(before: dict, model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if n in before and not torch.equal(before[n], p.detach())}


@pytest.mark.parametrize("mode", ["full", "freeze_embeddings", "head_only"])
def test_each_mode_trains_exactly_its_parameters(tiny_vit, image_folder, mode):
    cfg = _cfg(tiny_vit, image_folder)
    splits, problem = load_splits(cfg)
    names = problem.label_names
    batch = prepare_splits(splits, load_processor(cfg), cfg)["train"][:8]
    model = apply_mode(build_model(cfg, names), mode)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(pixel_values=batch["pixel_values"], labels=torch.tensor(batch["label"])).loss.backward()
    optimizer.step()
    changed = _changed(before, model)
    embeddings = {n for n in before if n.startswith("vit.embeddings.")}
    head = {n for n in before if n.startswith("classifier.")}
    assert {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings"} <= embeddings
    # a key bias adds q.b to every score of a query alike, which softmax ignores: its gradient is zero up to rounding
    key_biases = {n for n in before if n.endswith(("k_proj.bias", "key.bias"))}
    if mode == "full":
        assert set(before) - key_biases <= changed
    elif mode == "freeze_embeddings":
        assert set(before) - embeddings - key_biases <= changed <= set(before) - embeddings
    else:
        assert changed == head


def test_lora_trains_adapters_and_head_and_merged_reload_predicts_the_same(tiny_vit, image_folder, tmp_path):
    from transformers import AutoModelForImageClassification

    cfg = _cfg(tiny_vit, image_folder, "mode=lora")
    splits, problem = load_splits(cfg)
    names = problem.label_names
    processor = load_processor(cfg)
    batch = prepare_splits(splits, processor, cfg)["validation"][:8]
    model = apply_mode(build_model(cfg, names), "lora", cfg.lora)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        model(pixel_values=batch["pixel_values"], labels=torch.tensor(batch["label"])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = _changed(before, model)
    assert changed and all("lora_" in n or "classifier" in n for n in changed)
    assert any("q_proj.lora_" in n or "query.lora_" in n for n in changed)
    model.eval()
    with torch.no_grad():
        expected = model(pixel_values=batch["pixel_values"]).logits
    save_model(model, processor, cfg, tmp_path / "lora")
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "lora").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=batch["pixel_values"]).logits, expected, atol=1e-5, rtol=1e-4)


def test_a_source_classifier_of_other_labels_gets_a_new_head(tiny_vit, image_folder):
    from safetensors.torch import load_file

    cfg = _cfg(tiny_vit, image_folder)
    saved = load_file(tiny_vit / "model.safetensors")["classifier.weight"]
    same = build_model(cfg, ["blue", "red"]).classifier.weight.detach()
    other = build_model(cfg, ["cat", "dog"]).classifier.weight.detach()
    assert torch.equal(same, saved) and not torch.equal(other, saved)


def test_scoring_an_unreadable_image_names_the_file(tiny_vit, image_folder):
    encode = image_encoder(load_processor(_cfg(tiny_vit, image_folder)))
    with pytest.raises(TextftError, match="broken.png could not be read"):
        encode(image_files(image_folder / "red"))


def test_image_files_reads_a_folder_or_a_list(image_folder, tmp_path):
    found = image_files(image_folder)
    assert len(found) == 49 and found == sorted(found)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# images to score\n{found[0]}\n\n{found[1]}\n")
    assert image_files(listing) == found[:2]
    chunks = list(image_rows(image_folder, "image", chunk_size=20))
    assert [len(c) for c in chunks] == [20, 20, 9] and list(chunks[2].index) == list(range(40, 49))
    with pytest.raises(TextftError, match="does not exist"):
        image_files(tmp_path / "missing")


def test_saved_model_scores_image_files_like_training_saw_them(tiny_vit, image_folder):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(tiny_vit).eval()
    encode = image_encoder(AutoImageProcessor.from_pretrained(tiny_vit))
    files = [p for p in image_files(image_folder) if p.name != "broken.png"]
    with torch.no_grad():
        predicted = model(pixel_values=encode(files)).logits.argmax(-1).tolist()
    labels = [model.config.id2label[i] for i in predicted]
    accuracy = sum(label == p.parent.name for label, p in zip(labels, files, strict=True)) / len(files)
    assert accuracy >= 0.9
    assert open_image(files[0]).mode == "RGB"


def test_predict_scores_a_folder_of_images_and_a_list_of_paths(tiny_vit, image_folder, tmp_path, capsys):
    import pandas as pd

    from textft import predict

    good = tmp_path / "good"
    for path in image_files(image_folder):
        if path.name != "broken.png":
            (good / path.parent.name).mkdir(parents=True, exist_ok=True)
            (good / path.parent.name / path.name).write_bytes(path.read_bytes())
    predict.main([f"model={tiny_vit}", f"input={good}", f"output={tmp_path / 'folder.csv'}", "progress=false"])
    scored = pd.read_csv(tmp_path / "folder.csv")
    assert len(scored) == 48 and list(scored.columns[:3]) == ["image", "label", "score"]
    accuracy = (scored["label"] == scored["image"].map(lambda p: Path(p).parent.name)).mean()
    assert accuracy >= 0.9
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(scored["image"][:5]) + "\n")
    predict.main([f"model={tiny_vit}", f"input={listing}", f"output={tmp_path / 'list.csv'}", "progress=false"])
    assert pd.read_csv(tmp_path / "list.csv")["label"].tolist() == scored["label"][:5].tolist()
    with pytest.raises(SystemExit):  # the folder with the corrupt file: an error that names it, no output
        predict.main([f"model={tiny_vit}", f"input={image_folder}", f"output={tmp_path / 'bad.csv'}", "progress=false"])
    assert "broken.png could not be read" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()


def test_multi_label_images_from_a_list_column_train_and_predict(tmp_path):
    """Each image may hold a red top half and/or a blue bottom half; its labels are the colours present."""
    from textft.predict import PredictConfig, predict

    rng = random.Random(0)
    rows = []
    for i in range(160):
        labels = [c for c, on in (("red", i % 2), ("blue", (i // 2) % 2)) if on]
        image = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
        for name, box in (("red", (0, 0, SIZE, SIZE // 2)), ("blue", (0, SIZE // 2, SIZE, SIZE))):
            if name in labels:
                image.paste(tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLORS[name]), box)
        path = tmp_path / f"{i}.png"
        image.save(path)
        rows.append({"image": str(path), "labels": labels})
    for split, part in (("train", rows[:120]), ("test", rows[120:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    recipe = tmp_path / "multi.yaml"
    recipe.write_text(json.dumps({
        "task": "image",
        "model": {"name_or_path": "vit", "init": "scratch", "config": TINY_VIT},
        "data": {"files": {"train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl")},
                 "label_column": "labels", "val_split": 0.2},
        "train": {"num_train_epochs": 8, "learning_rate": 3e-3, "per_device_train_batch_size": 8, "bf16": False},
        "output_dir": str(tmp_path / "run"),
    }))  # fmt: skip
    main([f"recipe={recipe}"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["problem_type"] == "multi_label" and metrics["test_f1_micro"] >= 0.8, metrics
    scored = tmp_path / "scored.jsonl"
    predict(parse_settings(PredictConfig, [f"model={tmp_path / 'run'}", f"input={tmp_path / 'test.jsonl'}",
                                           f"output={scored}", "progress=false", "dtype=float32"],
                            "textft-predict"))  # fmt: skip
    out = [json.loads(line) for line in scored.read_text().splitlines()]
    hits = sum(sorted(r["pred_labels"]) == sorted(r["labels"]) for r in out)
    assert hits / len(out) == pytest.approx(metrics["test_subset_accuracy"], abs=1e-6)
