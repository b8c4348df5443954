"""Multi-seed runs (`seeds: [1, 2, 3]`): the recipe once per seed into output_dir/seed_N, then mean +- std of every metric."""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable
from pathlib import Path

from textft.config import RecipeConfig, write_text_atomic


def summarize(runs: dict[int, dict[str, float]]) -> dict[str, dict]:
    """{seed: metrics} -> {metric: {mean, std, values}}; std is the sample standard deviation (0 for one seed)."""
    names = sorted({k for m in runs.values() for k, v in m.items() if isinstance(v, (int, float))})
    summary = {}
    for name in names:
        values = [runs[seed][name] for seed in runs if name in runs[seed]]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[name] = {"mean": statistics.fmean(values), "std": std, "values": values}
    return summary


def summary_table(summary: dict[str, dict], runs: list[int], what: str = "seeds") -> str:
    rows = [f"| {name} | {s['mean']:.4f} +- {s['std']:.4f} |" for name, s in summary.items()]
    return "\n".join([f"| metric ({what} {', '.join(map(str, runs))}) | mean +- std |", "|---|---|", *rows]) + "\n"


def run_seeds(cfg: RecipeConfig, run: Callable[[RecipeConfig], dict]) -> dict[str, dict]:
    """Run `cfg` once per seed; write output_dir/metrics_summary.json (+ .md) and return the summary."""
    runs = {}
    for seed in cfg.seeds:
        one = dataclasses.replace(cfg, seed=seed, seeds=None, output_dir=str(Path(cfg.output_dir) / f"seed_{seed}"))
        runs[seed] = run(one)
    summary = summarize(runs)
    out = Path(cfg.output_dir)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return summary
    write_text_atomic(out / "metrics_summary.md", summary_table(summary, cfg.seeds))
    write_text_atomic(out / "metrics_summary.json", json.dumps({"seeds": cfg.seeds, "metrics": summary}, indent=2))
    return summary
