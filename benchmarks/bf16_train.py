"""bf16 autocast training on a CPU with native bf16: is it as accurate as fp32 (same seed), and faster? Per mode.

    nice -n 5 python benchmarks/bf16_train.py --modes full lora --train-rows 600

Each mode trains bbc_minilm (real MiniLM, real BBC articles, max_length 128, 1 epoch: a reduced budget) twice with the
same seed and rows, `train.bf16=false` and `train.bf16=true` (what `auto` picks on such a CPU), alternating fp32 and
bf16 runs so that load from other jobs hits both alike, and is tested on the whole held-out BBC test split. The bf16
models are kept under --work-dir (real fine-tuned models for benchmarks/bench_predict.py). One line per run is
appended to benchmarks/results/bf16_train.jsonl; bf16_train.{json,md} summarise every pair in it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RECIPES = {"full": "bbc_minilm", "lora": "bbc_minilm_lora", "head_only": "bbc_minilm_head_only"}
TOLERANCE = 0.005  # the bar: bf16 test accuracy within 0.5 point of fp32


def report(jsonl: Path, out: Path) -> None:
    """benchmarks/results/bf16_train.jsonl (one line per run) -> bf16_train.{json,md}: per mode and rows, bf16 vs fp32."""
    from textft.device import cpu_bf16_support, cpu_name

    runs = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    verdicts = {}
    for mode, rows in sorted({(r["mode"], r["train_rows"]) for r in runs}):
        pair = {r["precision"]: r for r in runs if r["mode"] == mode and r["train_rows"] == rows}
        if {"fp32", "bf16"} <= set(pair):
            fp32, bf16 = pair["fp32"], pair["bf16"]
            verdicts[f"{mode}_{rows}"] = {
                "accuracy_delta_points": round(100 * (bf16["test_accuracy"] - fp32["test_accuracy"]), 2),
                "within_0.5_point": bf16["test_accuracy"] >= fp32["test_accuracy"] - TOLERANCE,
                "speedup": round(bf16["train_samples_per_s"] / fp32["train_samples_per_s"], 2),
            }
    summary = {"cpu": cpu_name(), "bf16_support": cpu_bf16_support(), "runs": runs, "verdicts": verdicts}
    (out / "bf16_train.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# bf16 autocast training on a CPU with native bf16 vs fp32 (same seed, same rows)",
        "",
        f"CPU: {summary['cpu']} (native bf16: {summary['bf16_support']}), 1 torch thread, 2 cores shared with other "
        "jobs (load average per run below). bbc_minilm (full) / bbc_minilm_lora, a reduced budget: a subset of the "
        "training articles (`data.max_train_samples`), max_length 128, 1 epoch, seed 42, tested on the whole BBC test "
        "split (426 articles). fp32 = `train.bf16=false`, bf16 = `train.bf16=true` (what `auto` picks on this CPU). "
        "Command: `nice -n 5 python benchmarks/bf16_train.py --modes MODE --train-rows N` (one line per run in "
        "bf16_train.jsonl).",
        "",
        "| mode | train rows | precision | test accuracy | test macro-F1 | train loss | train s | samples/s | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['mode']} | {r['train_rows']} | {r['precision']} | {r['test_accuracy']:.4f} | {r['test_f1_macro']:.4f} "
            f"| {r['train_loss']} | {r['train_runtime_s']} | {r['train_samples_per_s']} "
            f"| {r['load_average'][0]} -> {r['load_average'][1]} |"
        )
    lines.append("")
    for key, v in verdicts.items():
        lines.append(
            f"- {key}: bf16 - fp32 = {v['accuracy_delta_points']:+.2f} points (within 0.5: {v['within_0.5_point']}), "
            f"samples/s {v['speedup']}x."
        )
    (out / "bf16_train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["full", "lora"], choices=list(RECIPES))
    parser.add_argument("--train-rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/bf16_train")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    parser.add_argument("--report", action="store_true", help="only summarise bf16_train.jsonl")
    args = parser.parse_args()
    out = Path(args.out)
    jsonl = out / "bf16_train.jsonl"
    if args.report:
        report(jsonl, out)
        return
    import logging

    import torch

    from textft.config import load_recipe
    from textft.train import run

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    for mode in args.modes:
        for precision in ("fp32", "bf16"):  # fp32 then bf16 per mode: load drifts hit the pair alike
            work = Path(args.work_dir) / f"{mode}_{args.train_rows}_{precision}"
            overrides = [
                f"data.max_train_samples={args.train_rows}",
                "data.max_length=128",
                "train.num_train_epochs=1",
                "train.eval_strategy=no",
                "train.save_strategy=no",
                "train.load_best_model_at_end=false",
                "train.disable_tqdm=true",
                f"train.bf16={'true' if precision == 'bf16' else 'false'}",
                f"seed={args.seed}",
                f"output_dir={work}",
            ]
            load = os.getloadavg()[0]
            metrics = run(load_recipe(RECIPES[mode], overrides))
            row = {
                "mode": mode,
                "train_rows": args.train_rows,
                "precision": metrics["precision"],
                "test_accuracy": round(metrics["test_accuracy"], 4),
                "test_f1_macro": round(metrics["test_f1_macro"], 4),
                "train_loss": round(metrics["train_loss"], 4),
                "train_runtime_s": round(metrics["train_runtime"], 1),
                "train_samples_per_s": round(metrics["train_samples_per_second"], 3),
                "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
                "threads": args.threads,
                "output_dir": str(work),
            }
            with open(jsonl, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    report(jsonl, out)


if __name__ == "__main__":
    main()
