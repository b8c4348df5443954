"""Train rows whose input also appears in a held-out split (validation, test): counted, and by default removed.

A text (whitespace-normalised; every input column for sentence pairs) or an image (its bytes) that is both in train and
in test inflates the test score: the model is asked about an example it was trained on. BBC News, for one, holds 100
exact duplicate articles; a random split put 27 of 444 test articles word for word in train.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict

from textft.config import RecipeConfig

log = logging.getLogger("textft")


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _image_bytes(value: dict) -> bytes:
    """datasets.Image(decode=False) values: {"bytes": ..., "path": ...}."""
    if value.get("bytes") is not None:
        return value["bytes"]
    return Path(value["path"]).read_bytes()


def row_keys(ds: Dataset, columns: list[str], task: str) -> Iterator[bytes]:
    """One digest per row of what the model sees: the text(s), or the image's bytes."""
    for batch in ds.select_columns(columns).iter(batch_size=1000):
        if task == "image":
            yield from (_digest(_image_bytes(v)) for v in batch[columns[0]])
        else:
            for values in zip(*(batch[c] for c in columns), strict=True):
                yield _digest("\x1f".join(" ".join(str(v).split()) for v in values).encode("utf-8"))


def remove_shared_rows(splits: DatasetDict, cfg: RecipeConfig) -> tuple[DatasetDict, dict]:
    """Count train rows whose input is also in validation/test; with data.dedup (default) drop them from train.

    Returns the splits and {"leak_train_rows_in_<split>": n, ..., "leak_train_rows_removed": n}."""
    from textft.data import input_columns

    columns = input_columns(cfg)
    held_out = {name: set(row_keys(ds, columns, cfg.task)) for name, ds in splits.items() if name != "train"}
    shared = {name: [] for name in held_out}
    for i, key in enumerate(row_keys(splits["train"], columns, cfg.task)):
        for name, keys in held_out.items():
            if key in keys:
                shared[name].append(i)
    leaked = sorted({i for rows in shared.values() for i in rows})
    counts = {f"leak_train_rows_in_{name}": len(rows) for name, rows in shared.items()}
    what = "images" if cfg.task == "image" else "texts"
    found = ", ".join(f"{len(rows)} in {name}" for name, rows in shared.items())
    if not leaked:
        log.info("leakage: no train %s are also in a held-out split (%s)", what, found)
    elif cfg.data.dedup:
        log.warning("leakage: %d train rows have %s also held out (%s): removed from train", len(leaked), what, found)
        keep = sorted(set(range(len(splits["train"]))) - set(leaked))
        splits["train"] = splits["train"].select(keep)
    else:
        log.warning(
            "leakage: %d train rows have %s also held out (%s): kept (data.dedup=false)", len(leaked), what, found
        )
    counts["leak_train_rows_removed"] = len(leaked) if cfg.data.dedup else 0
    return splits, counts
