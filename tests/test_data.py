"""Data: label maps, splits, truncation, and the one-line errors for bad data files."""

from __future__ import annotations

import json

import pytest
from conftest import write_csv

from textft.config import TextftError, load_recipe
from textft.data import load_splits
from textft.text import cut_tokens, text_encoder


def recipe(files: dict, *overrides: str):
    items = [f"data.files.{split}={files.get(split, 'null')}" for split in ("train", "validation", "test")]
    return load_recipe("bbc_minilm", ["model.name_or_path=unused", *items, *overrides])


def rows(labels, texts=None):
    texts = texts or [f"text number {i}" for i in range(len(labels))]
    return [{"text": t, "label": y} for t, y in zip(texts, labels, strict=True)]


def test_string_labels_become_a_classlabel_with_sorted_names_and_stratified_validation(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(["pos", "neg", "neutral"] * 20))
    splits, problem = load_splits(recipe({"train": train}, "data.val_split=0.25"))
    names = problem.label_names
    assert names == ["neg", "neutral", "pos"]
    assert splits["train"].features["label"].names == names
    assert len(splits["validation"]) == 15 and sorted(set(splits["validation"]["label"])) == [0, 1, 2]


def test_integer_labels_keep_their_index_or_take_label_names(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows([0, 1] * 10))
    _, problem = load_splits(recipe({"train": train}))
    names = problem.label_names
    assert names == ["0", "1"]
    _, problem = load_splits(recipe({"train": train}, "data.label_names=[negative,positive]"))
    names = problem.label_names
    assert names == ["negative", "positive"]
    stars = write_csv(tmp_path / "stars.csv", rows([1, 3, 5] * 10))
    splits, problem = load_splits(recipe({"train": stars}))
    names = problem.label_names
    assert names == ["1", "3", "5"] and set(splits["train"]["label"]) == {0, 1, 2}


def test_jsonl_and_parquet_files_and_a_test_split(tmp_path):
    import pandas as pd

    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows(["a", "b"] * 10)), encoding="utf-8")
    test = tmp_path / "test.parquet"
    pd.DataFrame(rows(["b", "a"])).to_parquet(test)
    splits, problem = load_splits(recipe({"train": train, "test": test}))
    names = problem.label_names
    assert names == ["a", "b"] and splits["test"]["label"] == [1, 0]


def test_empty_and_null_texts_are_dropped_with_a_count(tmp_path, caplog):
    train = tmp_path / "train.jsonl"
    data = rows(["a", "b"] * 10)
    data[0]["text"], data[1]["text"] = "   ", None
    train.write_text("\n".join(json.dumps(r) for r in data), encoding="utf-8")
    with caplog.at_level("WARNING", logger="textft"):
        splits, _ = load_splits(recipe({"train": train}))
    assert len(splits["train"]) + len(splits["validation"]) == 18
    assert "dropped 2 of 20 rows of train" in caplog.text


def test_max_train_samples_takes_a_shuffled_subset_not_the_first_rows(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(["a"] * 50 + ["b"] * 50))  # sorted by label, like imdb
    splits, _ = load_splits(recipe({"train": train}, "data.max_train_samples=20"))
    assert len(splits["train"]) == 20 and set(splits["train"]["label"]) == {0, 1}


@pytest.mark.parametrize(
    "how, expected", [("head", [1, 2, 3, 4]), ("tail", [7, 8, 9, 10]), ("head_tail", [1, 8, 9, 10])]
)
def test_cut_tokens(how, expected):
    assert cut_tokens(list(range(1, 11)), 4, how) == expected


def test_head_tail_truncation_keeps_special_tokens_and_the_end(minilm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    text = "start " + "middle " * 600 + "the very end"
    for how in ("head", "tail", "head_tail"):
        ids = text_encoder(tok, 64, how)([text])["input_ids"][0]
        assert len(ids) == 64 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    decoded = tok.decode(text_encoder(tok, 64, "head_tail")([text])["input_ids"][0])
    assert decoded.startswith("[CLS] start") and decoded.endswith("the very end [SEP]")


# ---- bad input: one line naming the problem and the fix ----------------------------------------------------------


def one_line_error(cfg) -> str:
    with pytest.raises(TextftError) as err:
        load_splits(cfg)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_text_or_label_column_lists_the_columns_found(tmp_path):
    train = write_csv(tmp_path / "train.csv", [{"review": "x", "label": "a"}])
    msg = one_line_error(recipe({"train": train}))
    assert "data.text_column: column 'text' not found" in msg and "columns found: review, label" in msg
    msg = one_line_error(recipe({"train": train}, "data.text_column=review", "data.label_column=sentiment"))
    assert "data.label_column: column 'sentiment' not found" in msg


def test_label_in_test_never_seen_in_train(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(["a", "b"] * 5))
    test = write_csv(tmp_path / "test.csv", rows(["a", "c"]))
    msg = one_line_error(recipe({"train": train, "test": test}))
    assert "label 'c'" in msg and "test.csv" in msg and "never appears in the train split" in msg


def test_too_few_rows_to_carve_a_stratified_validation_split(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(["a", "a", "a", "b"]))
    msg = one_line_error(recipe({"train": train}, "data.val_split=0.5"))
    assert "data.val_split=0.5: cannot carve a stratified split from 4 train rows (class 'b' has 1)" in msg


def test_missing_file(tmp_path):
    msg = one_line_error(recipe({"train": tmp_path / "nope.csv"}))
    assert "data.files.train: file" in msg and "nope.csv does not exist" in msg


def test_non_utf8_file_names_the_file_and_the_encoding_option(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(("text,label\n" + "caf\u00e9 au lait,a\nth\u00e9,b\n" * 4).encode("latin-1"))
    msg = one_line_error(recipe({"train": path}))
    assert "latin.csv is not valid utf-8" in msg and "data.encoding" in msg
    splits, _ = load_splits(recipe({"train": path}, "data.encoding=latin-1", "data.val_split=0.5"))
    assert "caf\u00e9 au lait" in list(splits["train"]["text"]) + list(splits["validation"]["text"])


def test_hub_dataset_while_offline_says_so_and_how_to_use_a_local_copy():
    cfg = load_recipe("imdb_bert")
    msg = one_line_error(cfg)
    assert "data.dataset 'imdb' could not be loaded" in msg and "HF_HUB_OFFLINE=1" in msg and "save_to_disk" in msg


def test_hub_model_while_offline_says_so():
    from textft.model import build_model

    with pytest.raises(
        TextftError, match="model.name_or_path 'bert-base-uncased' could not be loaded.*HF_HUB_OFFLINE=1"
    ):
        build_model(load_recipe("imdb_bert"), ["neg", "pos"])


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("multiple", [None, 8])
def test_padding_collator_gives_what_the_tokenizers_pad_gives(minilm_dir, side, multiple):
    """The numpy collator (fast) against DataCollatorWithPadding (tokenizer.pad): same keys, dtypes and values, for
    sentence pairs (token_type_ids), either padding side, and class-id, multi-label and regression labels."""
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from textft.text import padding_collator

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    tokenizer.padding_side = side
    texts = ["a short one", "a somewhat longer sentence about the election and the vote", "x"]
    encoded = tokenizer(texts, texts[::-1])
    for labels in ([0, 2, 1], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.5, -1.25, 3.0]):
        features = [
            {**{k: v[i] for k, v in encoded.items()}, "label": labels[i], "length": len(encoded["input_ids"][i])}
            for i in range(len(texts))
        ]
        ours = padding_collator(tokenizer, multiple)(features)
        reference = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)(
            [{k: v for k, v in f.items() if k != "length"} for f in features]
        )
        assert ours.keys() == reference.keys()
        for key, value in reference.items():
            assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key
