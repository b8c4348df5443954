"""Batch order (textft.sampling): `auto` groups by length only where random batches would pad long rows a lot."""

import json
import random

import pytest
import torch
from torch.utils.data import RandomSampler

from textft.sampling import (
    GroupedSampler,
    SortedSampler,
    grouped_batches,
    padded_tokens,
    random_batches,
    resolve_sampling,
)


def imdb_shaped(n: int, max_length: int = 512, seed: int = 0) -> list[int]:
    """Token counts like IMDB reviews (log-normal, mean 292, 12.7% over 512), truncated at max_length."""
    rng = random.Random(seed)
    sigma = 0.719
    mu = __import__("math").log(292) - sigma**2 / 2
    return [min(max_length, max(2, round(rng.lognormvariate(mu, sigma)))) for _ in range(n)]


@pytest.mark.parametrize("n", [1, 15, 16, 17, 130, 1000])
def test_grouped_batches_cover_every_row_once_in_full_batches(n):
    lengths = imdb_shaped(n)
    batches = grouped_batches(lengths, 16, torch.Generator().manual_seed(3))
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert all(len(b) == 16 for b in batches[:-1]) and 0 < len(batches[-1]) <= 16  # the remainder, if any, is last
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest row runs first: OOM shows at step 1


def test_grouping_removes_padding_and_keeps_batch_order_random():
    lengths = imdb_shaped(2000)
    g = torch.Generator().manual_seed(0)
    grouped, shuffled = grouped_batches(lengths, 16, g), random_batches(lengths, 16, g)
    assert padded_tokens(lengths, shuffled) > 1.6 * padded_tokens(lengths, grouped)
    # not the Trainer's long-to-short sawtooth: batch maxima are not sorted within any run of 8 batches
    maxima = [max(lengths[i] for i in b) for b in grouped[1:-1]]
    descending = sum(a >= b for a, b in zip(maxima, maxima[1:], strict=False)) / (len(maxima) - 1)
    assert 0.3 < descending < 0.7


def test_grouped_sampler_depends_on_seed_and_epoch_only():
    lengths = imdb_shaped(300)
    a, b = GroupedSampler(lengths, 8, seed=42), GroupedSampler(lengths, 8, seed=42)
    assert list(a) == list(b) == list(a)  # another process, or a resumed run, sees the same order
    b.set_epoch(1)
    assert list(a) != list(b) and sorted(b) == list(range(300))
    assert list(GroupedSampler(lengths, 8, seed=43)) != list(a)


def test_two_processes_share_one_grouped_order():
    """Under accelerate's data-parallel sharding each process takes every other grouped batch of the same order: every
    row is seen, and only the last batch repeats rows (accelerate's even_batches padding)."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    lengths = imdb_shaped(203)
    shards = []
    for rank in (0, 1):
        loader = DataLoader(list(range(203)), batch_size=8, sampler=GroupedSampler(lengths, 8, seed=3))
        loader = prepare_data_loader(loader, num_processes=2, process_index=rank, put_on_device=False)
        loader.set_epoch(1)
        shards.append([batch.tolist() for batch in loader])
    rows = [[i for batch in shard for i in batch] for shard in shards]
    assert set(rows[0]) | set(rows[1]) == set(range(203))
    assert set(rows[0][:-8]).isdisjoint(rows[1][:-8])
    expected = grouped_batches(lengths, 8, torch.Generator().manual_seed(3 * 1_000_003 + 1))
    assert shards[0][:-1] == expected[0:-2:2] and shards[1][:-1] == expected[1:-2:2]


def test_auto_groups_long_varied_texts_only():
    used, record = resolve_sampling("auto", imdb_shaped(3000), 16)
    assert used == "group_by_length" and record["grouping_speedup"] > 1.6 and record["random_batch_length"] > 400
    rng = random.Random(0)
    tweets = [min(64, max(5, round(rng.gauss(30, 12)))) for _ in range(3000)]  # much padding, but short rows
    assert resolve_sampling("auto", tweets, 16)[0] == "random"
    assert resolve_sampling("auto", [128] * 500, 16)[0] == "random"  # truncated long articles: nothing to save
    short_epoch, record = resolve_sampling("auto", imdb_shaped(3000)[: 16 * 49], 16)  # 49 batches: fewer than 50
    assert short_epoch == "random" and record["grouping_speedup"] > 1.5  # it would save compute, but not enough time
    assert resolve_sampling("auto", imdb_shaped(3000)[: 16 * 50], 16)[0] == "group_by_length"
    assert resolve_sampling("auto", None, 16) == ("random", {"strategy": "random", "asked": "auto"})  # images
    assert resolve_sampling("group_by_length", [5] * 40, 16)[0] == "group_by_length"  # asked for: kept
    assert resolve_sampling("random", imdb_shaped(500), 16)[0] == "random"


def test_trainer_samplers(tmp_path):
    from datasets import Dataset
    from transformers import TrainingArguments

    from textft.trainer import TextftTrainer

    lengths = imdb_shaped(1000)  # 63 batches of 16: enough for auto to group
    data = Dataset.from_dict({"length": lengths, "label": [0] * 1000})

    def trainer(strategy):
        args = TrainingArguments(
            output_dir=str(tmp_path), train_sampling_strategy=strategy, per_device_train_batch_size=16,
            report_to="none", use_cpu=True, seed=7,
        )  # fmt: skip
        return TextftTrainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=data)

    grouped = trainer("auto")
    assert isinstance(grouped._get_train_sampler(), GroupedSampler)
    assert grouped.sampling["strategy"] == "group_by_length" and grouped.sampling["asked"] == "auto"
    assert isinstance(trainer("random")._get_train_sampler(), RandomSampler)
    eval_order = list(grouped._get_eval_sampler(data))
    assert isinstance(grouped._get_eval_sampler(data), SortedSampler)
    assert [lengths[i] for i in eval_order] == sorted(lengths, reverse=True)
    short = trainer("auto")
    short.train_dataset = Dataset.from_dict({"length": [10, 12, 9, 30] * 250, "label": [0] * 1000})
    assert type(short._get_train_sampler()) is RandomSampler  # exactly what train_sampling_strategy=random gives


def test_unknown_strategy_is_a_one_line_error():
    from textft.config import RecipeError, load_recipe
    from textft.train_args import train_arguments

    with pytest.raises(RecipeError, match="train.train_sampling_strategy.*'lengthy'.*auto, random, group_by_length"):
        train_arguments(load_recipe("bbc_minilm", ["train.train_sampling_strategy=lengthy"]))


def test_runs_record_the_batch_order(full_run):
    """A real (tiny) run: short keyword rows, so `auto` trains on random batches, and metrics.json says so."""
    sampling = json.loads((full_run / "metrics.json").read_text())["train_sampling"]
    assert sampling["asked"] == "auto" and sampling["strategy"] == "random"
    assert sampling["random_batch_length"] < 96


@pytest.mark.slow
def test_auto_groups_imdb_shaped_real_text_and_learns(minilm_dir, bbc_files, tmp_path):
    """The real MiniLM on real BBC text cut to IMDB's length shape (scaled to max_length 128): `auto` groups the batches
    by length (batches of 8: 54 of them, enough for auto to group), and the model still learns the topic (about 40 s
    on 2 cores)."""
    import csv

    from textft.config import load_recipe
    from textft.train import run

    rng = random.Random(0)
    files = {}
    for split, n in (("train", 480), ("test", 200)):
        with open(bbc_files[split], newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))[:n]
        for row in rows:  # a span as long as an IMDB review relative to max_length: mean ~73 of 128 tokens
            words = row["text"].split()
            length = min(len(words), max(2, round(rng.lognormvariate(__import__("math").log(43), 0.719))))
            start = rng.randrange(len(words) - length + 1)
            row["text"] = " ".join(words[start : start + length])
        files[split] = str(tmp_path / f"{split}.csv")
        with open(files[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    overrides = [f"model.name_or_path={minilm_dir}", f"data.files.train={files['train']}",
                 f"data.files.test={files['test']}", "data.max_length=128", "train.num_train_epochs=1",
                 "train.per_device_train_batch_size=8",
                 "train.learning_rate=1e-4", "train.eval_strategy=no", "train.save_strategy=no",
                 "train.load_best_model_at_end=false", f"output_dir={tmp_path / 'run'}"]  # fmt: skip
    metrics = run(load_recipe("bbc_minilm", overrides))
    assert metrics["train_sampling"]["asked"] == "auto" and metrics["train_sampling"]["strategy"] == "group_by_length"
    assert metrics["train_sampling"]["grouping_speedup"] > 1.5
    assert metrics["test_accuracy"] > 0.7, metrics  # 5 topics: chance is 0.2
