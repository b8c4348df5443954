"""Shared fixtures: tiny random BERT/DistilBERT checkpoints (MiniLM tokenizer), generated and real (BBC) data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import csv
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a generated task a tiny model learns in a few steps: the label is which keyword a sentence contains
TOPICS = {"sport": "football", "tech": "computer", "politics": "election"}
FILLER = "the a of and to in is was for on that with as by at from this it be are".split()


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def keyword_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % len(TOPICS)]
        words = rng.choices(FILLER, k=rng.randint(4, 20))
        words.insert(rng.randrange(len(words)), TOPICS[label])
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(autouse=True)
def _default_fp32_precision():
    """Each test starts at torch's default fp32 precision: a training run earlier in the process (a session fixture) turns
    TF32 on process-wide on a GPU machine (transformers sets torch.backends.fp32_precision), CPU matmuls included."""
    import torch

    if getattr(torch.backends, "fp32_precision", None) not in (None, "none"):
        torch.backends.fp32_precision = "none"


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    from textft.assets import minilm_path

    return str(minilm_path())


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, minilm_dir) -> dict[str, str]:
    """Tiny random BERT and DistilBERT checkpoints (encoders, no head), saved as a user's local model directories."""
    from transformers import AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    vocab = tokenizer.vocab_size
    root = tmp_path_factory.mktemp("tiny_models")
    models = {
        "bert": BertModel(
            BertConfig(
                vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
            )
        ),
        "distilbert": DistilBertModel(DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64)),
    }
    paths = {}
    for name, model in models.items():
        path = root / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="session")
def keyword_files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("keyword_data")
    return {
        "train": str(write_csv(root / "train.csv", keyword_rows(96, seed=0))),
        "test": str(write_csv(root / "test.csv", keyword_rows(30, seed=1))),
    }


@pytest.fixture(scope="session")
def bbc_files(tmp_path_factory) -> dict[str, Path]:
    from textft.assets import prepare_bbc

    return prepare_bbc(tmp_path_factory.mktemp("bbc"))


def tiny_overrides(model_dir: str, files: dict[str, str], output_dir: Path, **extra: str) -> list[str]:
    """Overrides that make any recipe a seconds-long run of a tiny model on local files."""
    items = {
        "model.name_or_path": model_dir,
        "data.files.train": files["train"],
        "data.files.test": files["test"],
        "data.max_length": "32",
        "output_dir": str(output_dir),
        "train.num_train_epochs": "2",
        "train.per_device_train_batch_size": "16",
        "train.learning_rate": "1e-3",
        "train.logging_steps": "5",
        **extra,
    }
    return [f"{k}={v}" for k, v in items.items()]


@pytest.fixture(scope="session")
def trained_run(tiny_models, keyword_files, tmp_path_factory):
    """trained_run(mode, **overrides): a finished textft-train output_dir of the tiny BERT (cached per session)."""
    from textft.config import load_recipe
    from textft.train import run

    runs: dict[tuple, Path] = {}

    def make(mode: str = "full", **extra: str) -> Path:
        key = (mode, tuple(sorted(extra.items())))
        if key not in runs:
            out = tmp_path_factory.mktemp(f"run_{mode}")
            settings = {"mode": mode, "train.use_cpu": "true", **extra}
            run(load_recipe("bbc_minilm", tiny_overrides(tiny_models["bert"], keyword_files, out, **settings)))
            runs[key] = out
        return runs[key]

    return make


@pytest.fixture(scope="session")
def full_run(trained_run) -> Path:
    return trained_run()


@pytest.fixture(scope="session")
def lora_run(trained_run) -> Path:
    return trained_run("lora")


# a tiny ViT from scratch on coloured squares (red vs blue): the image side of the experiment tools' tests
TINY_VIT_CONFIG = {
    "image_size": 16,
    "patch_size": 4,
    "num_channels": 3,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}


@pytest.fixture(scope="session")
def square_image_files(tmp_path_factory) -> dict[str, str]:
    """train.csv / test.csv with an `image` column of PNG paths and a red/blue `label`."""
    from PIL import Image

    root = tmp_path_factory.mktemp("squares")
    rng = random.Random(0)
    colours = {"blue": (20, 30, 160), "red": (250, 80, 60)}
    files = {}
    for split, n in (("train", 24), ("test", 8)):
        rows = []
        for i in range(n):
            label = list(colours)[i % 2]
            pixel = tuple(min(255, max(0, c + rng.randint(-25, 25))) for c in colours[label])
            path = root / f"{split}_{i}.png"
            Image.new("RGB", (20, 20), pixel).save(path)
            rows.append({"image": str(path), "label": label})
        files[split] = str(write_csv(root / f"{split}.csv", rows))
    return files


def tiny_vit_recipe(files: dict[str, str], output_dir: Path, tmp: Path) -> Path:
    """A recipe file: the tiny ViT trained from scratch on the squares, a few seconds."""
    import json

    recipe = tmp / "tiny_vit.yaml"
    recipe.write_text(
        json.dumps(
            {
                "task": "image",
                "model": {"name_or_path": "vit", "init": "scratch", "config": TINY_VIT_CONFIG},
                "data": {"files": {"train": files["train"], "test": files["test"]}, "val_split": 0.25},
                "train": {"num_train_epochs": 2, "learning_rate": 3e-3, "per_device_train_batch_size": 6},
                "output_dir": str(output_dir),
            }
        )
    )
    return recipe
