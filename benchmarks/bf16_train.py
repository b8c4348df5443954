"""bf16 autocast training on a CPU with native bf16: is it as accurate as fp32 (same seed), and faster? Per mode.

    nice -n 5 python benchmarks/bf16_train.py --modes full lora --train-rows 600

Each mode trains bbc_minilm (real MiniLM, real BBC articles, max_length 128, 1 epoch: a reduced budget) twice with the
same seed and rows, `train.bf16=false` and `train.bf16=true` (what `auto` picks on such a CPU), alternating fp32 and
bf16 runs so that load from other jobs hits both alike, and is tested on the whole held-out BBC test split. The bf16
models are kept under --work-dir/<mode>_bf16 (a real fine-tuned model for benchmarks/bench_predict.py).
Writes benchmarks/results/bf16_train.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RECIPES = {"full": "bbc_minilm", "lora": "bbc_minilm_lora", "head_only": "bbc_minilm_head_only"}
TOLERANCE = 0.005  # the bar: bf16 test accuracy within 0.5 point of fp32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["full", "lora"], choices=list(RECIPES))
    parser.add_argument("--train-rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default="/tmp/bf16_train")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = parser.parse_args()
    import logging

    import torch

    from textft.config import load_recipe
    from textft.device import cpu_bf16_support, cpu_name, train_precision
    from textft.train import run

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    report = {
        "cpu": cpu_name(),
        "bf16_support": cpu_bf16_support(),
        "auto_picks": {m: str(train_precision(m)) for m in args.modes},
        "torch": torch.__version__,
        "threads": args.threads,
        "train_rows": args.train_rows,
        "seed": args.seed,
        "runs": [],
    }
    started = time.perf_counter()
    for mode in args.modes:
        for precision in ("fp32", "bf16"):
            out = Path(args.work_dir) / f"{mode}_{precision}"
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
                f"output_dir={out}",
            ]
            load = os.getloadavg()[0]
            metrics = run(load_recipe(RECIPES[mode], overrides))
            row = {
                "mode": mode,
                "precision": metrics["precision"],
                "test_accuracy": round(metrics["test_accuracy"], 4),
                "test_f1_macro": round(metrics["test_f1_macro"], 4),
                "train_loss": round(metrics["train_loss"], 4),
                "train_runtime_s": round(metrics["train_runtime"], 1),
                "train_samples_per_s": round(metrics["train_samples_per_second"], 3),
                "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
                "output_dir": str(out),
            }
            report["runs"].append(row)
            print(json.dumps(row), flush=True)
    verdicts = {}
    for mode in args.modes:
        fp32, bf16 = (
            next(r for r in report["runs"] if r["mode"] == mode and r["precision"] == p) for p in ("fp32", "bf16")
        )
        verdicts[mode] = {
            "accuracy_delta_points": round(100 * (bf16["test_accuracy"] - fp32["test_accuracy"]), 2),
            "within_0.5_point": bf16["test_accuracy"] >= fp32["test_accuracy"] - TOLERANCE,
            "speedup": round(bf16["train_samples_per_s"] / fp32["train_samples_per_s"], 2),
        }
    report["verdicts"] = verdicts
    report["wall_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    (out / "bf16_train.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# bf16 autocast training on a CPU with native bf16 vs fp32 (same seed, same rows)",
        "",
        f"CPU: {report['cpu']} (native bf16: {report['bf16_support']}), torch {report['torch']}, {args.threads} torch "
        f"thread(s), 2 cores shared with other jobs (load average per run below). bbc_minilm / bbc_minilm_lora, "
        f"{args.train_rows} training articles, max_length 128, 1 epoch (a reduced budget), seed {args.seed}, "
        "tested on the whole BBC test split. Command: `nice -n 5 python benchmarks/bf16_train.py "
        f"--modes {' '.join(args.modes)} --train-rows {args.train_rows}`.",
        "",
        "| mode | precision | test accuracy | test macro-F1 | train loss | train s | samples/s | load average |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['mode']} | {r['precision']} | {r['test_accuracy']:.4f} | {r['test_f1_macro']:.4f} | {r['train_loss']} "
            f"| {r['train_runtime_s']} | {r['train_samples_per_s']} | {r['load_average'][0]} -> {r['load_average'][1]} |"
        )
    lines.append("")
    for mode, v in verdicts.items():
        lines.append(
            f"- {mode}: bf16 - fp32 = {v['accuracy_delta_points']:+.2f} points (within 0.5: {v['within_0.5_point']}), "
            f"speed {v['speedup']}x."
        )
    (out / "bf16_train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
