"""The order of training rows: random batches, or batches of similar length where random ones would pad a lot.

Length grouping saves compute only when random batches carry much padding on long rows (long texts of widely varied
length, like IMDB reviews); on short or uniformly truncated texts it saves little wall time (per-step costs dominate
short batches) and changes what a batch holds. So textft's default `train.train_sampling_strategy: auto` groups only
when, on this run's own training lengths, random batches would compute at least GROUP_MIN_SPEEDUP times the padded
tokens of grouped ones and be GROUP_MIN_LENGTH tokens long or more on average, over an epoch of GROUP_MIN_BATCHES
batches or more; otherwise it is plain random order (the Trainer's RandomSampler, exactly). Short epochs stay random:
they take seconds to minutes either way, and with few steps what each batch holds weighs more (on 25-step runs the
grouped order fell to ~61% on 2 of 15 seeds where random order kept 68-78%). Seed studies:
benchmarks/results/seed_study.md.

Grouping here differs from the Trainer's LengthGroupedSampler (megabatches of 50 batches, each megabatch's batches
served longest to shortest): rows are shuffled, cut into groups of MEGABATCH batches, sorted by length inside a group
and cut into batches, and then the batches themselves are shuffled (the one holding the longest row first, so that an
out-of-memory error comes at step 1). Small groups keep each batch close to a random draw of rows; shuffled batches
keep the step-to-step order random instead of a long-to-short sawtooth. The order depends only on (seed, epoch), so
every process of a distributed run and a resumed run see the same batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

log = logging.getLogger("textft")

GROUP_MIN_SPEEDUP = 1.5  # auto groups when random batches carry >= 1.5x the padded tokens of grouped ones (1/3 padding)
GROUP_MIN_LENGTH = 96  # ... and random batches are this long on average (tweets and titles are not: random order)
GROUP_MIN_BATCHES = 50  # ... over an epoch this long (fewer: little time to save, and each batch weighs more)
MEGABATCH = 8  # batches per length-sorted group
STRATEGIES = ("auto", "random", "group_by_length", "sequential", "batch_rebalance")  # the last two: the Trainer's own


def grouped_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Row indices in batches of similar length: shuffle, sort inside groups of MEGABATCH batches, shuffle the batches.

    Every batch holds `batch_size` rows except the last one (the remainder), which stays last so that a batch sampler
    cutting the flat order every `batch_size` rows finds exactly these batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    group = MEGABATCH * batch_size
    batches = []
    for start in range(0, len(order), group):
        rows = sorted(order[start : start + group], key=lambda i: lengths[i], reverse=True)
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    last = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()] + last
    if len(batches) > 1:  # the longest row's batch first: running out of memory shows at the first step
        longest = max(range(len(batches) - len(last)), key=lambda b: lengths[batches[b][0]], default=0)
        batches[0], batches[longest] = batches[longest], batches[0]
    return batches


def random_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padded_tokens(lengths: Sequence[int], batches: list[list[int]]) -> int:
    """Tokens a model computes on for these batches, each padded to its longest row."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def padding_profile(lengths: Sequence[int], batch_size: int, draws: int = 3) -> tuple[float, float]:
    """(padded tokens of random batches / those of grouped batches, mean padded length of a random batch), averaged
    over a few draws: what grouping would save, and how long the batches it would save on are."""
    generator = torch.Generator().manual_seed(0)
    random_draws = [random_batches(lengths, batch_size, generator) for _ in range(draws)]
    random_cost = sum(padded_tokens(lengths, batches) for batches in random_draws)
    grouped_cost = sum(padded_tokens(lengths, grouped_batches(lengths, batch_size, generator)) for _ in range(draws))
    return random_cost / max(grouped_cost, 1), random_cost / max(draws * len(lengths), 1)


def resolve_sampling(strategy: str, lengths: Sequence[int] | None, batch_size: int) -> tuple[str, dict]:
    """`train.train_sampling_strategy` -> (the strategy used, a record for metrics.json). `auto`: group_by_length when
    grouping saves at least GROUP_MIN_SPEEDUP x the padded tokens on these lengths, on rows this long and an epoch this
    many batches (GROUP_MIN_LENGTH, GROUP_MIN_BATCHES), else random."""
    if lengths is None:  # images, or a dataset without a `length` column: nothing to group by
        used = "random" if strategy == "auto" else strategy
        return used, {"strategy": used, "asked": strategy}
    speedup, length = padding_profile(lengths, batch_size)
    used = strategy
    if strategy == "auto":
        batches = -(-len(lengths) // batch_size)
        group = speedup >= GROUP_MIN_SPEEDUP and length >= GROUP_MIN_LENGTH and batches >= GROUP_MIN_BATCHES
        used = "group_by_length" if group else "random"
        log.info(
            "batches: %s (train.train_sampling_strategy=auto: %d random batches of %d would be %.0f tokens long on "
            "average and grouping them by length would compute %.2fx fewer tokens; textft groups from %.1fx, %d "
            "tokens and %d batches)",
            used, batches, batch_size, length, speedup, GROUP_MIN_SPEEDUP, GROUP_MIN_LENGTH, GROUP_MIN_BATCHES,
        )  # fmt: skip
    record = {"grouping_speedup": round(speedup, 3), "random_batch_length": round(length, 1)}
    return used, {"strategy": used, "asked": strategy, **record}


class GroupedSampler(Sampler[int]):
    """Indices of `grouped_batches` for one epoch, flat; the order is a function of (seed, epoch) alone."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:  # the Trainer calls it before every epoch
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for batch in grouped_batches(self.lengths, self.batch_size, generator):
            yield from batch


class SortedSampler(Sampler[int]):
    """Evaluation order: longest row first, so that each evaluation batch pads little. Predictions come back in this
    order together with their labels."""

    def __init__(self, lengths: Sequence[int]):
        self.order = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)
