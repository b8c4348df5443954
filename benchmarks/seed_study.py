"""Which of textft's training defaults costs accuracy? Batch order (random or length-grouped), warmup and weight decay,
over seeds, on every offline set: short and long single-label texts, multi-label and regression.

    python benchmarks/seed_study.py --sets titles bbc spans multilabel regression --seeds 1 2 3 4 5
    python benchmarks/seed_study.py --report          # jsonl -> seed_study.{md,json}

Arms (warmup and weight decay named where an arm depends on them, so that a change of default leaves its rows valid):
  textft_default       no overrides: textft's defaults today (train_sampling_strategy auto, no warmup, weight decay
                       0.01; what auto resolved to is recorded)
  random_nowarm_nowd   random order, no warmup, no weight decay: the issue's "random-order run", the reference
  random_nowarm        random order, no warmup, weight decay 0.01: where auto resolves to random order this is the
                       default's own run (the Trainer's RandomSampler, same seed), so it runs on the first seed only,
                       as a check that the two are identical
  group_nowarm         textft's length grouping forced, no warmup: on spans_small, what the default did before auto
                       required GROUP_MIN_BATCHES batches an epoch
  default_warm6        textft's default before this study: auto sampling with 6% warmup
  random_warm6         random order with 6% warmup: isolates the order from warmup / weight decay
  random_nowd          random order, 6% warmup, no weight decay: splits random_warm6's gap into its two parts
  group_hf             textft's default before auto: the Trainer's LengthGroupedSampler (megabatches of up to 50
                       batches, served longest to shortest), 6% warmup; run on the sets where auto groups
v1 of this study (fp32, the Trainer's LengthGroupedSampler as the old default) is in seed_study_v1.md.

Sets, real text, train/validation/test disjoint, fixed files (the seed changes init, order and dropout, not the rows):
  titles      BBC News titles (first line of each article), max_length 64: short texts; accuracy
  bbc         BBC News articles, max_length 128: long texts, almost all truncated (no padding either way); accuracy
  spans       real BBC text cut to IMDB's length shape scaled to max_length 128 (log-normal, mean 292/4 = 73 tokens,
              12.7% over 128), label = the article's topic: varied lengths, where grouping removes much padding; accuracy
  spans_small the same at v1's size (400 train spans, 25 optimizer steps), where v1 saw the old grouping collapse once
  sentences   single body sentences of BBC articles (5-45 words, 2 per training article), max_length 64: short texts
              of varied length like tweets (the issue's case), label = the article's topic; accuracy
  multilabel  data/bbc_multilabel (python -m textft.assets bbc_multilabel), 720 train rows, max_length 256; micro-F1
  regression  data/bbc_regression (python -m textft.assets bbc_regression), 720 train rows, max_length 256; RMSE

Every run: MiniLM, full fine-tune, 1 epoch, lr 1e-4, batch 16, textft's default precision (bf16 autocast on a CPU with
native bf16), textft.train.run(); one line per run in benchmarks/results/seed_study.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "benchmarks" / "results"
ARMS = {
    "textft_default": {},
    "random_nowarm_nowd": {"train_sampling_strategy": "random", "warmup_steps": 0, "weight_decay": 0.0},
    "random_nowarm": {"train_sampling_strategy": "random", "warmup_steps": 0, "weight_decay": 0.01},
    "group_nowarm": {"train_sampling_strategy": "group_by_length", "warmup_steps": 0},
    "default_warm6": {"warmup_steps": 0.06},
    "random_warm6": {"train_sampling_strategy": "random", "warmup_steps": 0.06},
    "random_nowd": {"train_sampling_strategy": "random", "warmup_steps": 0.06, "weight_decay": 0.0},
    # with the Trainer's own LengthGroupedSampler (run_one swaps it in)
    "group_hf": {"train_sampling_strategy": "group_by_length", "warmup_steps": 0.06},
}
SAME_AS_DEFAULT_WHEN_RANDOM = "random_nowarm"  # textft_default's own run where auto resolves to random order
REFERENCE = "random_nowarm_nowd"  # the random-order run every arm is compared with, seed by seed
SETS = {  # recipe, max_length, train rows, validation rows, metric (test_<metric>), higher is better
    "titles": ("bbc_minilm", 64, 800, 100, "accuracy", True),
    "bbc": ("bbc_minilm", 128, 600, 60, "accuracy", True),
    "spans": ("bbc_minilm", 128, 1000, 100, "accuracy", True),
    "spans_small": ("bbc_minilm", 128, 400, 60, "accuracy", True),
    "sentences": ("bbc_minilm", 64, 2000, 200, "accuracy", True),
    "multilabel": ("bbc_multilabel_minilm", 256, 720, None, "f1_micro", True),
    "regression": ("bbc_regression_minilm", 256, 720, None, "rmse", False),
}


def _write(rows: list[tuple[str, str]], path: Path) -> None:
    import pandas as pd

    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)


def build_set(name: str, work: Path) -> dict[str, str]:
    """train/validation/test files for a set. Single-label sets: train and validation from data/bbc/train.csv, test
    from test.csv. multilabel / regression: the asset files; validation is carved from train by data.split_seed."""
    import pandas as pd

    from textft.assets import bbc_raw_articles

    recipe, max_length, n_train, n_val, *_ = SETS[name]
    if n_val is None:
        folder = ROOT / "data" / f"bbc_{name}"
        files = {s: folder / f"{s}.jsonl" for s in ("train", "test")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise SystemExit(f"{missing[0]} is missing: run python -m textft.assets bbc_{name}")
        return {s: str(p) for s, p in files.items()}
    folder = work / "data" / name
    files = {s: folder / f"{s}.csv" for s in ("train", "validation", "test")}
    if all(p.is_file() for p in files.values()):
        return {s: str(p) for s, p in files.items()}
    folder.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(ROOT / "data/bbc/train.csv").sample(frac=1.0, random_state=0)
    test = pd.read_csv(ROOT / "data/bbc/test.csv")
    pool, val = train.iloc[n_val:], train.iloc[:n_val]
    if name == "bbc":
        parts = {"train": pool.iloc[:n_train], "validation": val, "test": test}
        for s, frame in parts.items():
            _write(list(zip(frame["text"], frame["label"], strict=True)), files[s])
    elif name == "titles":
        titles = {
            " ".join(t.split()): next(line for line in t.splitlines() if line.strip()) for t, _ in bbc_raw_articles()
        }
        for s, frame in {"train": pool.iloc[:n_train], "validation": val, "test": test}.items():
            _write(
                [(" ".join(titles[t].split()), y) for t, y in zip(frame["text"], frame["label"], strict=True)], files[s]
            )
    elif name == "sentences":  # 2 random body sentences per training article, 1 per validation / test article
        from textft.assets import article_sentences

        rng = random.Random(0)
        for s, frame, per in (("train", pool, 2), ("validation", val, 1), ("test", test, 1)):
            rows = []
            for text, label in zip(frame["text"], frame["label"], strict=True):
                sentences = article_sentences(text)
                rows += [(x, label) for x in rng.sample(sentences, min(per, len(sentences)))]
            _write(rows[: n_train if s == "train" else None], files[s])
    else:  # spans: IMDB-shaped spans, each cut from one article of its split (so the splits stay disjoint)
        from transformers import AutoTokenizer

        from textft.assets import minilm_path

        tokenizer = AutoTokenizer.from_pretrained(minilm_path())
        rng = random.Random(0)
        sigma = 0.719  # log-normal with mean 292 and 12.7% over 512 (Sun et al. 2019, Table 1), scaled to max_length
        mu = math.log(292 * max_length / 512) - sigma**2 / 2
        for s, frame, n in (("train", pool, n_train), ("validation", val, n_val), ("test", test, len(test))):
            rows = []
            for text, label in list(zip(frame["text"], frame["label"], strict=True))[:n]:
                offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
                length = min(len(offsets), max(2, round(rng.lognormvariate(mu, sigma))))
                start = rng.randrange(0, len(offsets) - length + 1)
                rows.append((text[offsets[start][0] : offsets[start + length - 1][1]], label))
            _write(rows, files[s])
    return {s: str(p) for s, p in files.items()}


def run_one(set_name: str, arm: str, seed: int, files: dict[str, str], work: Path) -> dict:
    from textft.config import load_recipe
    from textft.train import run
    from textft.train_args import train_arguments

    recipe, max_length, n_train, n_val, metric, _ = SETS[set_name]
    overrides = [f"data.files.{split}={path}" for split, path in files.items()]
    overrides += [f"data.max_train_samples={n_train}"] if n_val is None else []
    overrides += [
        f"data.max_length={max_length}",
        "train.num_train_epochs=1",
        "train.learning_rate=1e-4",
        "train.per_device_train_batch_size=16",
        "train.eval_strategy=no",
        "train.save_strategy=no",
        "train.load_best_model_at_end=false",
        "train.disable_tqdm=true",
        f"seed={seed}",
        f"output_dir={work / 'runs' / set_name / arm / f'seed_{seed}'}",
    ]
    overrides += [f"train.{k}={v}" for k, v in ARMS[arm].items()]
    cfg = load_recipe(recipe, overrides)
    resolved = train_arguments(cfg)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    if arm == "group_hf":  # the Trainer's sampler in place of textft's: the old default, for comparison
        from transformers import Trainer

        from textft.trainer import TextftTrainer

        own = TextftTrainer._get_train_sampler
        TextftTrainer._get_train_sampler = Trainer._get_train_sampler
        try:
            metrics = run(cfg)
        finally:
            TextftTrainer._get_train_sampler = own
        metrics["train_sampling"] = {"strategy": "group_by_length (Trainer's LengthGroupedSampler)"}
    else:
        metrics = run(cfg)
    return {
        "set": set_name,
        "arm": arm,
        "seed": seed,
        "max_length": max_length,
        "sampling": metrics.get("train_sampling"),
        "precision": metrics.get("precision"),
        "warmup_steps": resolved.get("warmup_steps"),
        "weight_decay": resolved.get("weight_decay"),
        "metric": metric,
        "test_metric": metrics[f"test_{metric}"],
        "train_runtime_s": round(metrics["train_runtime"], 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "threads": __import__("torch").get_num_threads(),
    }


def _scale(set_name: str) -> float:
    return 100.0 if SETS[set_name][4] != "rmse" else 1.0  # accuracy and F1 in points, RMSE in its own units


def report(jsonl: Path) -> None:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    table: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        table.setdefault((r["set"], r["arm"]), []).append(r)
    summary = []
    for (set_name, arm), runs in sorted(
        table.items(), key=lambda kv: (list(SETS).index(kv[0][0]), list(ARMS).index(kv[0][1]))
    ):
        values = [r["test_metric"] for r in runs]
        reference = {r["seed"]: r["test_metric"] for r in table.get((set_name, REFERENCE), [])}
        paired = [_scale(set_name) * (r["test_metric"] - reference[r["seed"]]) for r in runs if r["seed"] in reference]
        summary.append(
            {
                "set": set_name,
                "arm": arm,
                "metric": runs[0]["metric"],
                "n": len(values),
                "seeds": sorted(r["seed"] for r in runs),
                "sampling": sorted({str((r["sampling"] or {}).get("strategy")) for r in runs}),
                "grouping_speedup": (runs[0]["sampling"] or {}).get("grouping_speedup"),
                "precision": sorted({str(r.get("precision")) for r in runs}),
                "mean": round(statistics.mean(values), 4),
                "sd": round(statistics.stdev(values), 4) if len(values) > 1 else None,
                "train_runtime_s_mean": round(statistics.mean(r["train_runtime_s"] for r in runs), 1),
                "vs_reference": round(statistics.mean(paired), 3) if paired else None,
                "vs_reference_se": round(statistics.stdev(paired) / len(paired) ** 0.5, 3) if len(paired) > 1 else None,
            }
        )
    (RESULTS / "seed_study.json").write_text(json.dumps({"arms": ARMS, "sets": SETS, "summary": summary}, indent=2))
    lines = [
        "# Seed study: which training default costs accuracy",
        "",
        "MiniLM, full fine-tune, 1 epoch, lr 1e-4, batch 16, textft's default precision, 1 torch thread per run, two runs "
        "at a time on 2 cores. Produced by `benchmarks/seed_study.py` (one line per run in seed_study.jsonl).",
        "",
        f"Last column: the mean over seeds of (arm - {REFERENCE}) on the same seed, +- its standard error. Accuracy and "
        "micro-F1 in points (higher is better), RMSE in its units (lower is better). `auto (speedup)`: what "
        "`train_sampling_strategy: auto` resolved to and the padded-token ratio it decided on.",
        "",
        "| set | metric | arm | batches | n | mean | sd | train s (mean) | vs random order, no warmup / wd (paired) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        sd = "-" if s["sd"] is None else f"{s['sd']:.4f}"
        paired = "-" if s["vs_reference_se"] is None else f"{s['vs_reference']:+.2f} +- {s['vs_reference_se']:.2f}"
        auto = s["arm"] in ("textft_default", "default_warm6")
        batches = ", ".join(s["sampling"]) + (f" ({s['grouping_speedup']}x)" if auto else "")
        lines.append(
            f"| {s['set']} | {s['metric']} | {s['arm']} | {batches} | {s['n']} | {s['mean']:.4f} | {sd} "
            f"| {s['train_runtime_s_mean']} | {paired} |"
        )
    (RESULTS / "seed_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS)[:3], choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/seed_study")
    parser.add_argument("--jsonl", default=str(RESULTS / "seed_study.jsonl"))
    parser.add_argument("--report", action="store_true", help="only summarise the jsonl into seed_study.{md,json}")
    args = parser.parse_args()
    jsonl = Path(args.jsonl)
    if args.report:
        report(jsonl)
        return
    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work_dir)

    def done() -> dict:
        lines = jsonl.read_text().splitlines() if jsonl.is_file() else []
        return {(r["set"], r["arm"], r["seed"]): r for r in map(json.loads, filter(None, lines))}

    for set_name in args.sets:
        files = build_set(set_name, work)
        for seed in args.seeds:  # seeds outermost within a set: every arm gets seed 1 before any gets seed 2
            for arm in args.arms:
                finished = done()
                if (set_name, arm, seed) in finished:
                    continue
                default = finished.get((set_name, "textft_default", seed))
                same_run = default and (default["sampling"] or {}).get("strategy") == "random"
                if arm == SAME_AS_DEFAULT_WHEN_RANDOM and same_run and seed != args.seeds[0]:
                    continue  # auto chose random order: the default run is this run (checked on the first seed)
                result = run_one(set_name, arm, seed, files, work)
                with open(jsonl, "a", encoding="utf-8") as f:
                    f.write(json.dumps(result) + "\n")
                print(json.dumps(result), flush=True)
    report(jsonl)


if __name__ == "__main__":
    main()
