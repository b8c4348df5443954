"""Training throughput: textft against the HF-example default, in one run, on the same model, data and batch.

    python benchmarks/bench_train.py                                  # CPU preset: MiniLM, short, a few minutes
    python benchmarks/bench_train.py --preset h100 --model bert-base  # GPU: 3 IMDB-sized epochs, bf16, MFU

Setups train the same model from the same initial weights on the same rows with the same batch size:
- hf_example: what run_classification.py does by default: every row padded to max_length, random batches, fp32 (its
  default precision; `--hf-precision textft` gives it textft's precision instead, to compare the data path alone).
- textft: textft's own pipeline and defaults: tokenize_splits (unpadded, `length` column), padding_collator (pad to the
  longest row of the batch), TextftTrainer + train_arguments (`train_sampling_strategy: auto`, textft.sampling: length-
  grouped batches where random ones would pad long rows a lot; fused AdamW; `train.bf16: auto`: bf16 autocast where
  textft.device says the hardware computes it natively, GPUs and AMX / AVX512-BF16 CPUs; TF32 on GPUs).
- textft_fp32 (IMDB-shaped data only): the same with train.bf16=false: what `auto` gains over fp32 on this machine, and
  (against hf_example in fp32) what textft's data path alone gains.

Two data sets:
- imdb_shaped: real BBC News text cut to IMDB's WordPiece length distribution (mean 292, 12.7% over 512; Sun et al. 2019):
  a log-normal fitted to those two numbers decides each row's length, and the row is that many tokens of real articles.
- bbc: the real BBC News articles and the real pretrained MiniLM; after one epoch both setups are evaluated on the
  held-out test articles and their accuracies must agree within ACCURACY_TOLERANCE.

Per setup: samples/s and real (non-pad) tokens/s measured after `--warmup-steps`, padding waste (pad tokens / all
tokens), peak memory (CUDA: max allocated; CPU: peak RSS of this process, reset before each setup), and on CUDA the
model FLOPs utilisation on real tokens (6 x non-embedding params x tokens + attention, against the GPU's bf16 peak).
The CPU model and its native-bf16 flag are recorded. Writes benchmarks/results/train_<machine>.json and .md.
`--profile-steps N` adds torch.profiler's top ops (self CPU and self device time) over N steps of each setup: how the
cuDNN-attention cost on an H200 was found (benchmarks/results/gpu_h200).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from datasets import ClassLabel, Dataset, DatasetDict  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from textft.assets import bbc_articles, minilm_path  # noqa: E402
from textft.config import DataConfig, ModelConfig, RecipeConfig  # noqa: E402
from textft.text import pad_multiple, padding_collator, tokenize_splits  # noqa: E402
from textft.train_args import train_arguments  # noqa: E402
from textft.trainer import TextftTrainer  # noqa: E402

IMDB_MEAN_TOKENS, IMDB_SHARE_OVER_512 = 292, 0.1269  # Sun et al. 2019, Table 1 (bert-base-uncased WordPiece)
ACCURACY_TOLERANCE = 0.02  # the two setups see rows in different orders; more than 2 points apart would be a bug
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12, "L40S": 362e12}
PRESETS = {  # rows, batch, epochs, warmup steps
    "cpu": {
        "imdb_rows": 128,
        "batch_size": 16,
        "epochs": 1,
        "warmup_steps": 1,
        "bbc_train": 512,
        "bbc_max_length": 128,
        "threads": 1,  # one thread per setup: on a shared CPU, OpenMP threads that wait on each other time out noisily
    },
    "h100": {
        "imdb_rows": 25_000,
        "batch_size": 32,
        "epochs": 3,
        "warmup_steps": 20,
        "bbc_train": 1781,
        "bbc_max_length": 512,
        "threads": None,
    },
}
MODELS = {  # random weights cost the same FLOPs as the real checkpoints of these shapes
    "bert-base": {"model_type": "bert"},  # BertConfig() defaults are bert-base-uncased's shape
    "distilbert": {"model_type": "distilbert"},
}


# ---- data -------------------------------------------------------------------------------------------------------------


def imdb_lengths(n: int, rng: random.Random) -> list[int]:
    """Token counts from a log-normal with IMDB's mean and share over 512 (sigma solves both; the smaller root)."""
    z = 1.1408  # P(Z > z) = 0.1269
    gap = math.log(512) - math.log(IMDB_MEAN_TOKENS)  # = z*sigma - sigma^2/2
    sigma = z - math.sqrt(z * z - 2 * gap)
    mu = math.log(IMDB_MEAN_TOKENS) - sigma * sigma / 2
    return [max(8, round(rng.lognormvariate(mu, sigma))) for _ in range(n)]


def imdb_shaped(tokenizer, n: int, seed: int) -> Dataset:
    """n rows of real BBC text, each cut to an IMDB-shaped number of WordPiece tokens (exactly, via offsets)."""
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {}
    for text, label in bbc_articles():
        by_label.setdefault(label, []).append(text)
    labels = sorted(by_label)
    streams = {}
    for label, texts in by_label.items():  # one long stream of real articles per class
        stream = " ".join(texts)
        enc = tokenizer(stream, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        streams[label] = (stream, enc["offset_mapping"])
    rows = {"text": [], "label": []}
    for length in imdb_lengths(n, rng):
        label = rng.choice(labels)
        stream, offsets = streams[label]
        length = min(length, len(offsets))
        start = rng.randrange(0, len(offsets) - length + 1)
        rows["text"].append(stream[offsets[start][0] : offsets[start + length - 1][1]])
        rows["label"].append(labels.index(label))
    return Dataset.from_dict(rows).cast_column("label", ClassLabel(names=labels))


def bbc_splits(n_train: int, seed: int) -> DatasetDict:
    """The real BBC articles, split as `python -m textft.assets bbc` does (stratified 80/20, seed 0)."""
    from textft.assets import prepare_bbc

    out = ROOT / "data" / "bbc"
    if not (out / "train.csv").is_file():
        prepare_bbc(out)
    from textft.data import read_file

    splits = DatasetDict({s: read_file(out / f"{s}.csv", f"bbc {s}") for s in ("train", "test")})
    names = sorted(set(splits["train"]["label"]))
    splits = splits.map(lambda b: {"label": [names.index(v) for v in b["label"]]}, batched=True)
    splits = splits.cast_column("label", ClassLabel(names=names))
    splits["train"] = splits["train"].shuffle(seed=seed).select(range(min(n_train, len(splits["train"]))))
    return splits


def epoch_padding_waste(lengths: list[int], batch_size: int, seed: int) -> dict:
    """Padding waste over one whole epoch, without training: the order textft's `auto` picks for these lengths (its
    length grouping, textft.sampling) against random batches and against padding to max_length."""
    from textft.sampling import grouped_batches, padded_tokens, random_batches, resolve_sampling

    generator = torch.Generator().manual_seed(seed)
    strategy, _ = resolve_sampling("auto", lengths, batch_size)
    batches = (grouped_batches if strategy == "group_by_length" else random_batches)(lengths, batch_size, generator)
    real = sum(lengths)
    return {
        "rows": len(lengths),
        "batch_size": batch_size,
        "textft_sampling": strategy,
        "textft_padding_waste_pct": round(100 * (1 - real / padded_tokens(lengths, batches)), 2),
        "random_batches_padding_waste_pct": round(
            100 * (1 - real / padded_tokens(lengths, random_batches(lengths, batch_size, generator))), 2
        ),
        "hf_example_padding_waste_pct": round(100 * (1 - real / (max(lengths) * len(lengths))), 2),
    }


def imdb_epoch_lengths(n: int, max_length: int, seed: int) -> list[int]:
    """Row lengths of an n-row IMDB-shaped epoch after truncation ([CLS] + tokens + [SEP], at most max_length)."""
    return [min(n_tokens + 2, max_length) for n_tokens in imdb_lengths(n, random.Random(seed))]


# ---- the two setups ---------------------------------------------------------------------------------------------------


def recipe_for(model_path: str, max_length: int, batch_size: int, epochs: int, seed: int) -> RecipeConfig:
    cfg = RecipeConfig(model=ModelConfig(name_or_path=model_path), data=DataConfig(max_length=max_length), seed=seed)
    cfg.train = {"per_device_train_batch_size": batch_size, "num_train_epochs": epochs}
    return cfg


def hf_example_data(splits: DatasetDict, tokenizer, max_length: int) -> DatasetDict:
    """run_classification.py's default: padding='max_length', truncation to max_seq_length."""

    def encode(batch):
        return tokenizer(batch["text"], padding="max_length", max_length=max_length, truncation=True)

    return splits.map(encode, batched=True, remove_columns=["text"])


class StepClock(TrainerCallback):
    """Wall time at the end of every optimizer step (CUDA synchronised, so a step's time is the GPU's)."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


class ProfileSteps(TrainerCallback):
    """torch.profiler over `steps` optimizer steps after `start`: the ops that take the most self time (CPU and CUDA)."""

    def __init__(self, start: int, steps: int):
        self.start, self.steps, self.profiler, self.tables = start, steps, None, {}

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.start and self.profiler is None:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self.profiler is not None and state.global_step == self.start + self.steps:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.profiler.__exit__(None, None, None)
            events = self.profiler.key_averages()
            for key in ("self_cpu_time_total", "self_device_time_total"):
                self.tables[key] = events.table(sort_by=key, row_limit=14, max_name_column_width=48)
            self.profiler = None


def counting(collate):
    """Wrap a collator to record (rows, real tokens, padded tokens, sum of squared real lengths) per batch, in order."""
    batches: list[tuple[int, int, int, int]] = []

    def collate_and_count(features):
        batch = collate(features)
        mask = batch["attention_mask"]
        real = mask.sum(dim=1)
        batches.append((mask.shape[0], int(real.sum()), mask.numel(), int((real * real).sum())))
        return batch

    collate_and_count.batches = batches
    return collate_and_count


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # Linux: writing 5 resets the process's peak RSS (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_gb() -> float | None:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1e6
    except (OSError, AttributeError):
        return None


def build_model(model: str, num_labels: int, seed: int):
    set_seed(seed)  # the same initial weights (including the new head) for both setups
    if model in MODELS:
        config = AutoConfig.for_model(**MODELS[model], num_labels=num_labels)
        return AutoModelForSequenceClassification.from_config(config)
    # fp32 as stored by most encoders; transformers 5 would keep a bf16-stored checkpoint in bf16 (no autocast then)
    return AutoModelForSequenceClassification.from_pretrained(model, num_labels=num_labels, dtype=torch.float32)


def training_flops(model, batches, warmup: int) -> float:
    """6 x non-embedding params x real tokens + attention (12 x layers x hidden x length^2), after the warmup steps."""
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    hidden = getattr(config, "hidden_size", None) or config.dim
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    params = sum(p.numel() for p in model.parameters()) - embedding
    tokens = sum(b[1] for b in batches[warmup:])
    squares = sum(b[3] for b in batches[warmup:])
    return 6 * params * tokens + 12 * layers * hidden * squares


def peak_flops(precision: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available() or precision == "fp32":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def run_setup(
    setup, model_name, splits, tokenizer, num_labels, args, max_length, epochs, evaluate=False, sampling=None
) -> dict:
    """Train one setup for `epochs` over splits['train']; measure it; optionally evaluate on splits['test'].
    `sampling`: textft's batch order, when a sample of rows stands for a bigger epoch (what `auto` picks for that)."""
    import numpy as np

    cfg = recipe_for(model_name, max_length, args.batch_size, epochs, args.seed)
    if sampling:
        cfg.train["train_sampling_strategy"] = sampling
    out = Path(args.work_dir) / setup
    common = {
        "output_dir": str(out),
        "seed": args.seed,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
    }
    common.update(
        logging_steps=50, disable_tqdm=True, per_device_train_batch_size=args.batch_size, num_train_epochs=epochs
    )
    if setup == "textft_fp32":
        cfg.train["bf16"] = False
    precision_flags = {k: v for k, v in train_arguments(cfg).items() if k in ("bf16", "fp16", "use_cpu")}
    if setup.startswith("textft"):
        data = tokenize_splits(splits, tokenizer, cfg)
        kwargs = {**train_arguments(cfg), **common, "load_best_model_at_end": False, "torch_compile": args.compile}
    else:  # the HF example: TrainingArguments defaults (fp32), pad to max_length, random batches
        data = hf_example_data(splits, tokenizer, max_length)
        kwargs = {**common, "learning_rate": cfg.train.get("learning_rate", 5e-5)}
        kwargs.update(precision_flags if args.hf_precision == "textft" else {"use_cpu": not torch.cuda.is_available()})
    kwargs["learning_rate"] = args.learning_rate
    training_args = TrainingArguments(**kwargs)
    if setup.startswith("textft"):  # textft's padding rule follows the arguments (precision, device, compile)
        collate = counting(padding_collator(tokenizer, pad_to_multiple_of=pad_multiple(training_args)))
    else:
        collate = counting(default_data_collator)
    model = build_model(model_name, num_labels, args.seed)
    clock = StepClock()
    callbacks = [clock] + ([ProfileSteps(args.warmup_steps, args.profile_steps)] if args.profile_steps else [])
    trainer = (TextftTrainer if setup.startswith("textft") else Trainer)(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    reset_peak_memory()
    result = trainer.train()
    batches = collate.batches[: len(clock.times)]  # the data loader fetches one batch ahead of the step
    w = min(args.warmup_steps, len(clock.times) - 1)
    seconds = clock.times[-1] - clock.times[w - 1] if w > 0 else result.metrics["train_runtime"]
    rows = sum(b[0] for b in batches[w:])
    real = sum(b[1] for b in batches[w:])
    all_real, all_padded = sum(b[1] for b in batches), sum(b[2] for b in batches)
    precision = "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"
    peak = peak_flops(precision, args.peak_tflops)
    report = {
        "setup": setup,
        "precision": precision,
        "optimizer": str(trainer.args.optim),
        "sampling": (getattr(trainer, "sampling", None) or {}).get(
            "strategy", str(trainer.args.train_sampling_strategy)
        ),
        "steps": len(clock.times),
        "measured_steps": len(clock.times) - w,
        "train_runtime_s": round(result.metrics["train_runtime"], 2),
        "samples_per_s": round(rows / seconds, 3),
        "real_tokens_per_s": round(real / seconds, 1),
        "padding_waste_pct": round(100 * (1 - all_real / all_padded), 2),
        "mean_padded_length": round(all_padded / sum(b[0] for b in batches), 1),
        "peak_memory_gb": None if (m := peak_memory_gb()) is None else round(m, 3),
        "peak_memory_kind": "cuda max allocated" if torch.cuda.is_available() else "process peak RSS",
        "mfu_pct": round(100 * training_flops(model, batches, w) / seconds / peak, 2) if peak else None,
        "train_loss": round(result.metrics["train_loss"], 4),
    }
    if args.profile_steps:
        report["profile"] = callbacks[1].tables
        for key, table in report["profile"].items():
            print(f"-- {setup}: top ops by {key} over {args.profile_steps} steps\n{table}", flush=True)
    if evaluate:
        trainer.data_collator = padding_collator(tokenizer) if setup.startswith("textft") else default_data_collator
        pred = trainer.predict(data["test"])  # textft evaluates in length-sorted order: compare with its label_ids
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        report["test_accuracy"] = round(float((np.argmax(logits, -1) == pred.label_ids).mean()), 4)
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return report


def compare(name: str, rows: dict, runs: list[dict]) -> dict:
    base, ours, *fp32 = runs
    result = {
        "data": name,
        **rows,
        "hf_example": base,
        "textft": ours,
        "speedup_samples_per_s": round(ours["samples_per_s"] / base["samples_per_s"], 2),
    }
    if fp32:
        result["textft_fp32"] = fp32[0]
        result["auto_vs_fp32_samples_per_s"] = round(ours["samples_per_s"] / fp32[0]["samples_per_s"], 2)
        if base["precision"] == fp32[0]["precision"]:  # the data path alone: both fp32
            result["data_path_speedup_samples_per_s"] = round(fp32[0]["samples_per_s"] / base["samples_per_s"], 2)
    return result


# ---- the report -------------------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    from textft.device import cpu_bf16_support

    info = {"cpu": cpu, "cpu_cores": cores, "torch_threads": torch.get_num_threads(), "gpu": gpu}
    info["cpu_bf16"] = cpu_bf16_support()
    import transformers

    info.update(torch=torch.__version__, transformers=transformers.__version__, python=platform.python_version())
    slug = info["gpu"] or f"cpu{cores}"
    info["slug"] = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")
    return info


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# Training throughput: textft vs the HF-example default ({m['gpu'] or 'CPU'})",
        "",
        f"Machine: {m['gpu'] or 'no GPU'}; {m['cpu']} (native bf16: {m.get('cpu_bf16') or 'none'}), {m['cpu_cores']} "
        f"cores ({m['torch_threads']} torch threads); "
        f"torch {m['torch']}, "
        f"transformers {m['transformers']}. {result['note']}",
        f"Command: `{result['command']}` ({result['date']}, whole run {result['wall_s']} s)",
        "",
        "| data | model | max_len | batch | epochs | setup | precision | batches | train time (s) | samples/s | "
        "real tokens/s | padding waste | peak mem (GB) | MFU | loss | test acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for part in result["results"]:
        for setup in ("hf_example", "textft", "textft_fp32"):
            if setup not in part:
                continue
            r = part[setup]
            cells = [
                part["data"],
                part["model"],
                part["max_length"],
                part["batch_size"],
                part["epochs"],
                setup,
                r["precision"],
                r["sampling"],
                r["train_runtime_s"],
                r["samples_per_s"],
                r["real_tokens_per_s"],
                f"{r['padding_waste_pct']}%",
                r["peak_memory_gb"],
                "-" if r["mfu_pct"] is None else f"{r['mfu_pct']}%",
                r["train_loss"],
                r.get("test_accuracy", "-"),
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    for part in result["results"]:
        extra = ""
        if "accuracy_equal" in part:
            extra = f"; test accuracy equal within {ACCURACY_TOLERANCE:.0%}: {part['accuracy_equal']}"
        if "full_epoch_25k_rows" in part:
            e = part["full_epoch_25k_rows"]
            extra += (
                f"; over a whole 25,000-row IMDB-shaped epoch (no training; `auto` picks {e['textft_sampling']}) "
                f"padding waste is {e['textft_padding_waste_pct']}% for textft, {e['random_batches_padding_waste_pct']}% "
                f"for random batches and {e['hf_example_padding_waste_pct']}% padded to max_length"
            )
        if "auto_vs_fp32_samples_per_s" in part:
            extra += f"; textft's precision auto ({part['textft']['precision']}) is {part['auto_vs_fp32_samples_per_s']}x fp32"
        if "data_path_speedup_samples_per_s" in part:
            extra += f"; both in fp32 (the data path alone) textft is {part['data_path_speedup_samples_per_s']}x"
        lines.append(
            f"- {part['data']}: textft is **{part['speedup_samples_per_s']}x** the HF-example samples/s{extra}."
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=list(PRESETS), default="h100" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--model", default="minilm", help="minilm (the real pretrained one), bert-base, distilbert, or a path"
    )
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--imdb-rows", type=int, help="rows of the IMDB-shaped data (one epoch; preset decides)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--epochs", type=int, help="epochs over the IMDB-shaped rows")
    parser.add_argument("--warmup-steps", type=int, help="steps left out of samples/s (start-up, CUDA warm-up)")
    parser.add_argument("--bbc-train", type=int, help="BBC training articles (0 skips the BBC part)")
    parser.add_argument("--bbc-max-length", type=int)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--compile", action="store_true", help="torch.compile the textft setup")
    parser.add_argument(
        "--hf-precision", choices=("default", "textft"), default="default",
        help="hf_example's precision: its own default (fp32), or textft's (to compare the data path alone)",
    )  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, help="the accelerator's peak for MFU, if not in PEAK_BF16_FLOPS")
    parser.add_argument("--threads", type=int, help="torch CPU threads (preset decides; none: torch's default)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile-steps", type=int, default=0, help="torch.profiler tables over this many steps")
    parser.add_argument("--setups", nargs="+", default=["hf_example", "textft", "textft_fp32"])
    parser.add_argument("--note", default="", help="a remark for the report (e.g. 'machine shared with other jobs')")
    parser.add_argument("--work-dir", default="/tmp/textft_bench")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_name = str(minilm_path()) if args.model == "minilm" else args.model
    tokenizer = AutoTokenizer.from_pretrained(minilm_path() if args.model in MODELS else model_name)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True  # both setups; textft would set it anyway (train.tf32=auto)

    results = []
    imdb = imdb_shaped(tokenizer, args.imdb_rows, args.seed)
    lengths = [len(x) for x in tokenizer(list(imdb["text"]), verbose=False)["input_ids"]]
    shape = {
        "rows": len(imdb),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
        "share_over_512": round(sum(n > 512 for n in lengths) / len(lengths), 4),
        "share_over_max_length": round(sum(n > args.max_length for n in lengths) / len(lengths), 4),
    }
    print("imdb_shaped:", shape, flush=True)
    splits = DatasetDict({"train": imdb})
    # the rows stand for IMDB's 25,000-row epoch: textft trains them in the order `auto` picks for that epoch (a
    # sample of a few hundred rows is too short an epoch for auto to group: textft.sampling.GROUP_MIN_BATCHES)
    lengths_25k = imdb_epoch_lengths(25_000, args.max_length, args.seed)
    full_epoch = epoch_padding_waste(lengths_25k, args.batch_size, args.seed)
    runs = [
        run_setup(s, model_name, splits, tokenizer, 5, args, args.max_length, args.epochs,
                  sampling=full_epoch["textft_sampling"])
        for s in args.setups
    ]  # fmt: skip
    part = {"model": args.model, "max_length": args.max_length, "batch_size": args.batch_size, "epochs": args.epochs}
    results.append(compare("imdb_shaped", {**part, "lengths": shape}, runs))
    results[-1]["full_epoch_25k_rows"] = full_epoch
    print(json.dumps(results[-1], indent=1), flush=True)

    if args.bbc_train:
        bbc = bbc_splits(args.bbc_train, args.seed)
        bbc_model = model_name if args.model not in MODELS else str(minilm_path())  # accuracy needs real weights
        runs = [
            run_setup(s, bbc_model, bbc, tokenizer, 5, args, args.bbc_max_length, 1, evaluate=True)
            for s in ("hf_example", "textft")
        ]
        part = {"model": "minilm", "max_length": args.bbc_max_length, "batch_size": args.batch_size, "epochs": 1}
        part["rows"] = {"train": len(bbc["train"]), "test": len(bbc["test"])}
        results.append(compare("bbc", part, runs))
        acc = [r["test_accuracy"] for r in runs]
        results[-1]["accuracy_equal"] = abs(acc[0] - acc[1]) <= ACCURACY_TOLERANCE
        print(json.dumps(results[-1], indent=1), flush=True)

    info = machine()
    result = {
        "machine": info,
        "command": "python benchmarks/bench_train.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "wall_s": round(time.perf_counter() - started, 1),
        "note": args.note,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "work_dir", "note")},
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"train_{info['slug']}_{args.model}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
