"""Text inputs: tokenisation as in training (head / tail / head+tail truncation), and per-batch padding.

The text half of the task pair text.py / images.py: `tokenize_splits` turns stored rows into model inputs (images.py:
`transform_splits`), `padding_collator` batches them; predict encodes rows with the same `text_encoder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from datasets import Dataset, DatasetDict

from textft.config import RecipeConfig

PARALLEL_TOKENIZE_ROWS = 20_000  # splits this large are tokenized by several processes (data.num_proc=None)


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one sequence (e.g. [CLS] ... [SEP])."""
    probe = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(probe) + 1):
        if full[i : i + len(probe)] == probe:
            return full[:i], full[i + len(probe) :]
    return [], []


def cut_tokens(ids: list[int], budget: int, how: str) -> list[int]:
    """Keep `budget` tokens: the head, the tail, or head+tail (128/510 of the budget from the start; Sun et al. 2019)."""
    if len(ids) <= budget:
        return ids
    if how == "tail":
        return ids[len(ids) - budget :]
    if how == "head_tail":
        head = round(budget * 128 / 510)
        return ids[:head] + ids[len(ids) - (budget - head) :]
    return ids[:budget]


def text_encoder(tokenizer, max_length: int, truncation: str = "head") -> Callable[..., dict[str, list]]:
    """A batched function: texts (or two lists of texts) -> input_ids/attention_mask(/token_type_ids), unpadded."""
    if truncation == "head":

        def encode_head(texts: list[str], pairs: list[str] | None = None) -> dict[str, list]:
            return tokenizer(texts, pairs, truncation=True, max_length=max_length)

        return encode_head

    prefix, suffix = _special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    with_types = "token_type_ids" in tokenizer.model_input_names

    def encode_cut(texts: list[str], pairs: list[str] | None = None) -> dict[str, list]:
        ids = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        ids = [prefix + cut_tokens(x, budget, truncation) + suffix for x in ids]
        out = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}
        if with_types:
            out["token_type_ids"] = [[0] * len(x) for x in ids]
        return out

    return encode_cut


def tokenize_splits(splits: DatasetDict, tokenizer, cfg: RecipeConfig) -> DatasetDict:
    """Tokenize every split once, unpadded, with a `length` column (tokens per row) for the length-grouped sampler.

    datasets caches each result on disk, keyed by the data and the tokenizer, so a rerun (or the other processes of a
    distributed run, which wait for the main one) loads it instead of tokenizing again. Large splits are tokenized in
    parallel unless data.num_proc says otherwise. Padding happens per batch in `padding_collator`.
    """
    from textft.data import input_columns

    cols = input_columns(cfg)
    encode = text_encoder(tokenizer, cfg.data.max_length, cfg.data.truncation)

    def tokenize(batch: dict) -> dict:
        out = encode(batch[cols[0]], batch[cols[1]] if len(cols) == 2 else None)
        return {**out, "length": [len(ids) for ids in out["input_ids"]]}

    def num_proc(ds: Dataset) -> int | None:
        if cfg.data.num_proc is not None:
            return cfg.data.num_proc
        return min(os.cpu_count() or 1, 8) if len(ds) >= PARALLEL_TOKENIZE_ROWS else None

    keep = {"label"}
    return DatasetDict(
        {
            split: ds.map(
                tokenize,
                batched=True,
                remove_columns=[c for c in ds.column_names if c not in keep],
                num_proc=num_proc(ds),
                desc=f"tokenizing {split}",
            )
            for split, ds in splits.items()
        }
    )


def pad_multiple(args) -> int | None:
    """What a batch's length is rounded up to, for TrainingArguments `args`: 64 under torch.compile (it recompiles per
    shape: fewer, coarser shapes); 8 under mixed precision or on CUDA (tensor cores, and the aligned attention masks
    that SDPA's fused kernels need, want multiples of 8); none for fp32 on a CPU (exactly the unpadded outputs)."""
    if args.torch_compile:
        return 64
    if args.mixed_precision != "no" or args.device.type == "cuda":
        return 8
    return None


LABEL_KEYS = ("label", "labels", "label_ids")


def pad_batch(tokenizer, columns: dict[str, list], pad_to_multiple_of: int | None = None) -> dict:
    """One batch from columns ({key: one value per row}): token columns padded to the longest row (rounded up to
    `pad_to_multiple_of`), on the tokenizer's padding side, into int64 tensors; labels become `labels` (int64 class ids,
    or float32 for multi-label and regression), as DataCollatorWithPadding gives. Written with numpy: tokenizer.pad costs
    ~6 ms of Python a batch of 32 long rows, as much as a whole GPU step of a small encoder. `length` (the sampler's
    column) is left out."""
    import numpy as np
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pad_values = {"input_ids": pad_id, "token_type_ids": tokenizer.pad_token_type_id, "special_tokens_mask": 1}
    left = tokenizer.padding_side == "left"
    longest = max(map(len, columns["input_ids"]))
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    batch = {}
    for key, values in columns.items():
        if key == "length":
            continue
        if key in LABEL_KEYS:
            batch["labels"] = torch.tensor(values)
        elif isinstance(values[0], (list, tuple, np.ndarray)):
            padded = np.full((len(values), longest), pad_values.get(key, 0), dtype=np.int64)
            for i, row in enumerate(values):
                if left:
                    padded[i, longest - len(row) :] = row
                else:
                    padded[i, : len(row)] = row
            batch[key] = torch.from_numpy(padded)
        else:
            batch[key] = torch.tensor(values)
    return batch


def padding_collator(tokenizer, pad_to_multiple_of: int | None = None) -> Callable[[list[dict]], dict]:
    """The training collator: rows (dicts) -> pad_batch."""

    def collate(features: list[dict]) -> dict:
        return pad_batch(tokenizer, {key: [f[key] for f in features] for key in features[0]}, pad_to_multiple_of)

    return collate
