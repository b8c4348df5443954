"""Which precision path is fastest on this CPU: the MiniLM forward (inference) and a training step, fp32 vs bf16.

    nice -n 5 python benchmarks/bench_cpu_precision.py --rounds 3

Inference, batch 32, real BBC text at 128 and 512 tokens (every row full length, so padding plays no part):
  fp32, bf16 weights (model.to(bfloat16)), fp32 weights under torch.autocast(cpu, bfloat16); each with SDPA and eager
  attention; torch threads 1 vs 2 for the fp32 and bf16-weights SDPA paths; and the bf16-weights SDPA model under
  torch.compile(dynamic=True) (what varying batch shapes in textft-predict would need), its compile time recorded.
Training, batch 16 at 128 tokens, AdamW: fp32 vs bf16 autocast (fp32 master weights), as the Trainer's bf16=True does.
Variants run interleaved (A B C A B C ...) so that load from other jobs hits each alike; the median round counts.
Max |logit difference| to fp32 is reported for each inference path. Writes benchmarks/results/bf16_cpu_paths.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from textft.assets import minilm_path  # noqa: E402
from textft.device import cpu_bf16_support, cpu_name  # noqa: E402


def batch_of(tokenizer, length: int, size: int) -> dict:
    import pandas as pd

    texts = pd.read_csv(ROOT / "data/bbc/train.csv")["text"].tolist()[:size]
    return tokenizer(texts, truncation=True, max_length=length, padding="max_length", return_tensors="pt")


def model_for(attn: str, dtype: torch.dtype):
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=5, attn_implementation=attn)
    torch.manual_seed(0)
    torch.nn.init.normal_(model.classifier.weight, std=0.02)  # the same head for every variant
    return model.to(dtype).eval()


def time_inference(model, batch, autocast: bool) -> tuple[float, torch.Tensor]:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        start = time.perf_counter()
        logits = model(**batch).logits
        return time.perf_counter() - start, logits.float()


def time_train_steps(batch, autocast: bool, steps: int) -> float:
    model = model_for("sdpa", torch.float32).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.zeros(len(batch["input_ids"]), dtype=torch.long)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        with ctx:
            loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    threads = torch.get_num_threads()
    report = {
        "cpu": cpu_name(),
        "bf16_support": cpu_bf16_support(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "load_average_start": os.getloadavg(),
        "inference": {},
        "train_step": {},
    }
    variants = {  # name -> (attention, weight dtype, autocast, threads)
        "fp32_sdpa": ("sdpa", torch.float32, False, threads),
        "bf16_weights_sdpa": ("sdpa", torch.bfloat16, False, threads),
        "autocast_bf16_sdpa": ("sdpa", torch.float32, True, threads),
        "fp32_eager": ("eager", torch.float32, False, threads),
        "bf16_weights_eager": ("eager", torch.bfloat16, False, threads),
        "fp32_sdpa_1thread": ("sdpa", torch.float32, False, 1),
        "bf16_weights_sdpa_1thread": ("sdpa", torch.bfloat16, False, 1),
    }
    models = {name: model_for(attn, dtype) for name, (attn, dtype, _, _) in variants.items()}
    variants["bf16_weights_sdpa_compiled"] = variants["bf16_weights_sdpa"]
    models["bf16_weights_sdpa_compiled"] = torch.compile(model_for("sdpa", torch.bfloat16), dynamic=True)
    report["compile_seconds"] = {}
    for length in (128, 512):
        batch = batch_of(tokenizer, length, 32)
        times: dict[str, list[float]] = {name: [] for name in variants}
        logits: dict[str, torch.Tensor] = {}
        for name, (_, _, autocast, n) in variants.items():  # warm-up (and compilation)
            torch.set_num_threads(n)
            started = time.perf_counter()
            time_inference(models[name], batch, autocast)
            if name.endswith("_compiled"):
                report["compile_seconds"][length] = round(time.perf_counter() - started, 1)
        for _ in range(args.rounds):
            for name, (_, _, autocast, n) in variants.items():
                torch.set_num_threads(n)
                seconds, logits[name] = time_inference(models[name], batch, autocast)
                times[name].append(seconds)
        torch.set_num_threads(threads)
        base = statistics.median(times["fp32_sdpa"])
        report["inference"][length] = {
            name: {
                "rows_per_s": round(32 / statistics.median(t), 2),
                "speedup_vs_fp32_sdpa": round(base / statistics.median(t), 2),
                "max_abs_logit_diff": float((logits[name] - logits["fp32_sdpa"]).abs().max()),
                "seconds": [round(x, 3) for x in t],
            }
            for name, t in times.items()
        }
        print(length, json.dumps(report["inference"][length]), flush=True)
    batch = batch_of(tokenizer, 128, 16)
    train_times: dict[str, list[float]] = {"fp32": [], "autocast_bf16": []}
    for _ in range(max(1, args.rounds - 1)):
        for name in train_times:
            train_times[name].append(time_train_steps(batch, name != "fp32", args.train_steps))
    report["train_step"] = {
        name: {"seconds_per_step": round(statistics.median(t), 3), "rounds": [round(x, 3) for x in t]}
        for name, t in train_times.items()
    }
    report["train_step"]["speedup"] = round(
        report["train_step"]["fp32"]["seconds_per_step"] / report["train_step"]["autocast_bf16"]["seconds_per_step"], 2
    )
    print(json.dumps(report["train_step"]), flush=True)
    report["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    (out / "bf16_cpu_paths.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# CPU precision paths: MiniLM forward (batch 32) and training step (batch 16, 128 tokens)",
        "",
        f"CPU: {report['cpu']} (native bf16: {report['bf16_support']}), torch {report['torch']}, "
        f"{threads} threads; {os.cpu_count()} cores, load average {report['load_average_start'][0]:.1f} at the "
        f"start and {report['load_average_end'][0]:.1f} at the end. Median of {args.rounds} interleaved rounds. "
        f"Command: `python benchmarks/bench_cpu_precision.py --rounds {args.rounds}`.",
        "",
        "| tokens | path | rows/s | vs fp32 sdpa | max abs logit diff |",
        "|---|---|---|---|---|",
    ]
    for length, paths in report["inference"].items():
        for name, r in paths.items():
            lines.append(
                f"| {length} | {name} | {r['rows_per_s']} | {r['speedup_vs_fp32_sdpa']}x | {r['max_abs_logit_diff']:.1e} |"
            )
    t = report["train_step"]
    lines += [
        "",
        f"torch.compile(dynamic=True) warm-up (compilation) seconds per shape: {report['compile_seconds']}.",
        f"Training step: fp32 {t['fp32']['seconds_per_step']} s, bf16 autocast {t['autocast_bf16']['seconds_per_step']} s "
        f"({t['speedup']}x).",
        "",
    ]
    (out / "bf16_cpu_paths.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
