"""textft-predict vs transformers.pipeline("text-classification"), fp32 and bf16: rows/s on the same model and texts.

    nice -n 5 python benchmarks/bench_predict.py --run outputs/bbc_minilm --threads 1   # a trained textft run
    python benchmarks/bench_predict.py --run outputs/bbc_minilm --device cuda --n-imdb 3000 --name predict_bench_h100

Two text sets, both real BBC words:
  bbc   the BBC News test articles, at max_length 128 (bbc_minilm's recipe value);
  imdb  IMDB-shaped lengths at max_length 512: spans of the concatenated BBC corpus whose WordPiece lengths follow a
        log-normal fitted to IMDB's (mean 292 tokens, 12.7% over 512; Sun et al. 2019, Table 1), capped at 3,045.
For each set, side by side in one run, alternated for --repeats rounds (the best round of each counts):
  textft_score_auto     textft-predict's scoring path (length-sorted batches, the dtype textft.device picks for this
                        CPU: dtype=auto), the scoring call alone with the model loaded once, as for the pipelines;
  textft_score_float32  the same in fp32 (dtype=float32): the gain of sorting alone;
  textft_predict_auto   textft-predict end to end (csv in, csv out, model load included);
  pipeline_bB_fp32      pipeline(batch_size=B), fp32 (its default);  pipeline_bB_bf16  the same with dtype=bfloat16;
  pipeline_b1_fp32      when --n-b1 > 0.
Agreement of each with the fp32 pipeline: same label share, max probability difference. The padding each batching
scheme computes is counted from the lengths; the tokenizer's share of textft's scoring time is measured.
The CPU model and its native-bf16 flag are recorded. Writes benchmarks/results/predict_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textft.cli import parse_settings  # noqa: E402
from textft.inference import load_classifier, run_info, score_rows, text_inputs  # noqa: E402
from textft.predict import PredictConfig, predict, resolve_settings  # noqa: E402


def imdb_shaped_texts(articles: list[str], tokenizer, n: int, seed: int = 0) -> list[str]:
    """n spans of the concatenated articles with IMDB-like WordPiece lengths (log-normal: mean 292, 12.7% > 512)."""
    rng = np.random.default_rng(seed)
    sigma = 0.719  # solves mean = exp(mu + sigma^2/2) = 292 and P(L > 512) = 0.127
    mu = np.log(292) - sigma**2 / 2
    lengths = np.clip(rng.lognormal(mu, sigma, n).round().astype(int), 10, 3045)
    corpus = " ".join(articles)
    enc = tokenizer(corpus, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = enc["offset_mapping"]
    starts = [i for i, (a, _) in enumerate(offsets) if a == 0 or corpus[a - 1] == " "]  # word starts
    texts = []
    for length in lengths:
        body = int(length) - 2  # [CLS] and [SEP]
        start = starts[rng.integers(0, len(starts))]
        start = min(start, len(offsets) - body - 1)
        texts.append(corpus[offsets[start][0] : offsets[start + body - 1][1]])
    return texts


def padded_tokens(lengths: np.ndarray, batch_size: int, sort: bool) -> int:
    """Tokens a model computes when batches pad to their longest member (dynamic padding)."""
    order = np.argsort(-lengths, kind="stable") if sort else np.arange(len(lengths))
    return int(
        sum(
            lengths[order[i : i + batch_size]].max() * len(order[i : i + batch_size])
            for i in range(0, len(order), batch_size)
        )
    )


def run_textft(
    run_dir: Path, texts: list[str], max_length: int, batch_size: int, tmp: Path, device: str, dtype: str = "auto"
) -> tuple[float, np.ndarray, list[str]]:
    inp, out = tmp / "in.csv", tmp / "out.csv"
    pd.DataFrame({"text": texts}).to_csv(inp, index=False)
    out.unlink(missing_ok=True)
    pairs = [
        f"model={run_dir}",
        f"input={inp}",
        f"output={out}",
        f"max_length={max_length}",
        f"batch_size={batch_size}",
    ]
    pairs += ["progress=false", "resume=false", "chunk_size=4096", f"dtype={dtype}", f"device={device}"]
    start = time.perf_counter()
    predict(parse_settings(PredictConfig, pairs, "bench"))
    seconds = time.perf_counter() - start
    frame = pd.read_csv(out)
    probs = frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy()
    return seconds, probs, frame["label"].tolist()


class TextftScorer:
    """textft-predict's own scoring path (load_classifier, text_inputs, score_rows: length-sorted batches) with the model
    loaded once, so that the scoring call alone is timed, as the pipeline's is."""

    def __init__(self, run_dir: Path, max_length: int, batch_size: int, dtype: str, device: str):
        pairs = [
            f"model={run_dir}",
            "input=unused.csv",
            "output=unused.csv",
            f"max_length={max_length}",
            f"batch_size={batch_size}",
        ]
        settings = parse_settings(PredictConfig, [*pairs, f"dtype={dtype}", f"device={device}"], "bench")
        self.model, tokenizer = load_classifier(run_dir, "text", settings)
        self.settings, _ = resolve_settings(settings, run_info(run_dir), tokenizer)
        self.inputs = text_inputs(tokenizer, self.settings)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    def __call__(self, texts: list[str]) -> tuple[float, np.ndarray, list[str]]:
        start = time.perf_counter()
        logits = score_rows(pd.DataFrame({"text": texts}), self.inputs, self.model, self.settings)
        seconds = time.perf_counter() - start
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)  # single-label: softmax, as the problem type decodes it
        return seconds, probs, [self.labels[i] for i in probs.argmax(1)]


def run_pipeline(
    pipe, texts: list[str], max_length: int, batch_size: int, labels: list[str]
) -> tuple[float, np.ndarray, list[str]]:
    start = time.perf_counter()
    results = pipe(texts, batch_size=batch_size, truncation=True, max_length=max_length, top_k=None)
    seconds = time.perf_counter() - start
    probs = np.array([[{r["label"]: r["score"] for r in res}[name] for name in labels] for res in results])
    return seconds, probs, [max(res, key=lambda r: r["score"])["label"] for res in results]


def agreement(ours: tuple[np.ndarray, list[str]], reference: tuple[np.ndarray, list[str]]) -> dict:
    return {
        "same_label": float(np.mean([x == y for x, y in zip(ours[1], reference[1], strict=True)])),
        "max_abs_prob_diff": float(np.abs(ours[0] - reference[0]).max()),
    }


def machine(device: str, note: str) -> dict:
    import torch
    import transformers

    from textft.device import cpu_bf16_support, cpu_name, predict_precision

    return {
        "device": device,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "cpu": cpu_name(),
        "cpu_bf16": cpu_bf16_support(),
        "textft_auto_dtype": predict_precision(device).dtype,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "shared": note,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained textft run directory (e.g. bbc_minilm)")
    parser.add_argument("--bbc-csv", default=str(ROOT / "data/bbc/test.csv"))
    parser.add_argument("--n-bbc", type=int, default=444)
    parser.add_argument("--n-imdb", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-b1", type=int, default=0, help="texts for pipeline(batch_size=1), the slowest (0: skip)")
    parser.add_argument("--threads", type=int, help="torch threads for every variant (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: every variant runs there")
    parser.add_argument("--name", default="predict_bench", help="report file name (without .json / .md)")
    parser.add_argument(
        "--note", default="2 CPU cores shared with other jobs; timings are noisy, variants alternate round by round"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run)
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    articles = pd.read_csv(args.bbc_csv)["text"].tolist()
    all_articles = articles + pd.read_csv(ROOT / "data/bbc/train.csv")["text"].tolist()
    sets = {
        "bbc": (articles[: args.n_bbc], 128),
        "imdb": (imdb_shaped_texts(all_articles, tokenizer, args.n_imdb), 512),
    }
    b = args.batch_size
    on = {"device": args.device if args.device != "cpu" else -1}
    pipes = {  # fp32 named: transformers 5 loads a checkpoint in its stored dtype otherwise
        f"pipeline_b{b}_fp32": pipeline("text-classification", model=str(run_dir), dtype=torch.float32, **on),
        f"pipeline_b{b}_bf16": pipeline("text-classification", model=str(run_dir), dtype=torch.bfloat16, **on),
    }
    report = {"machine": machine(args.device, args.note), "run": str(run_dir), "batch_size": b, "sets": {}}
    started = time.time()
    for name, (texts, max_length) in sets.items():
        full = np.array([len(x) for x in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]])
        lengths = np.minimum(full, max_length)
        real = int(lengths.sum())
        padding = {
            f"unsorted_b{b}": 1 - real / padded_tokens(lengths, b, sort=False),
            f"sorted_b{b}": 1 - real / padded_tokens(lengths, b, sort=True),
        }
        tokenize_start = time.perf_counter()
        tokenizer(texts, truncation=True, max_length=max_length)
        tokenize_seconds = time.perf_counter() - tokenize_start
        for pipe in pipes.values():
            run_pipeline(pipe, texts[:8], max_length, b, labels)  # warm-up
        scorers = {
            f"textft_score_{d}": TextftScorer(run_dir, max_length, b, d, args.device) for d in ("auto", "float32")
        }
        for scorer in scorers.values():
            scorer(texts[:8])  # warm-up
        times: dict[str, list[float]] = {"textft_predict_auto": [], **{k: [] for k in (*scorers, *pipes)}}
        probs: dict[str, tuple[np.ndarray, list[str]]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            run_textft(run_dir, texts[:8], max_length, b, Path(tmp), args.device)
            for _ in range(args.repeats):  # every variant once per round: load from other jobs hits all alike
                seconds, p, lab = run_textft(run_dir, texts, max_length, b, Path(tmp), args.device)
                times["textft_predict_auto"].append(seconds)
                probs["textft_predict_auto"] = (p, lab)
                for key, scorer in scorers.items():
                    seconds, p, lab = scorer(texts)
                    times[key].append(seconds)
                    probs[key] = (p, lab)
                for key, pipe in pipes.items():
                    seconds, p, lab = run_pipeline(pipe, texts, max_length, b, labels)
                    times[key].append(seconds)
                    probs[key] = (p, lab)
            if args.n_b1:  # slow: once, on the first --n-b1 texts (rows/s of that subset)
                seconds, _, _ = run_pipeline(pipes[f"pipeline_b{b}_fp32"], texts[: args.n_b1], max_length, 1, labels)
                times["pipeline_b1_fp32"] = [seconds * len(texts) / len(texts[: args.n_b1])]
        rows_per_s = {k: round(len(texts) / min(v), 2) for k, v in times.items()}
        report["sets"][name] = {
            "rows": len(texts),
            "max_length": max_length,
            "tokens_mean_untruncated": round(float(full.mean()), 1),
            "share_over_512": round(float((full > 512).mean()), 4),
            "padding_waste": {k: round(v, 4) for k, v in padding.items()},
            "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
            "rows_per_s": rows_per_s,
            "speedup_vs_pipeline_fp32": round(rows_per_s["textft_score_auto"] / rows_per_s[f"pipeline_b{b}_fp32"], 2),
            "speedup_vs_pipeline_bf16": round(rows_per_s["textft_score_auto"] / rows_per_s[f"pipeline_b{b}_bf16"], 2),
            "end_to_end_vs_pipeline_fp32": round(
                rows_per_s["textft_predict_auto"] / rows_per_s[f"pipeline_b{b}_fp32"], 2
            ),
            "tokenizer_share_of_textft_auto": round(tokenize_seconds / min(times["textft_score_auto"]), 4),
            "agreement_with_pipeline_fp32": {
                k: agreement(probs[k], probs[f"pipeline_b{b}_fp32"]) for k in probs if k != f"pipeline_b{b}_fp32"
            },
        }
        print(name, json.dumps(report["sets"][name]), flush=True)
    report["wall_seconds"] = round(time.time() - started, 1)
    report["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report, torch.__version__))
    print(f"wrote {out / args.name}.json and .md")


def markdown(report: dict, torch_version: str) -> str:
    b = report["batch_size"]
    m = report["machine"]
    lines = [
        "# textft-predict vs transformers.pipeline (text-classification), fp32 and bf16",
        "",
        f"Machine: {m['gpu'] + ' GPU, host CPU ' if m.get('gpu') else ''}{m['cpu']} (native bf16: {m['cpu_bf16'] or 'none'}; textft dtype=auto picks "
        f"{m['textft_auto_dtype']}), {m['cores']} cores ({m['shared']}); torch {m['torch']} ({m['torch_threads']} "
        f"threads), transformers {m['transformers']}. Model: the MiniLM (BERT, 6 layers) run `{report['run']}`. "
        "Best of the rounds. textft (scoring) and the pipelines: the scoring call alone, model loaded before; textft-predict "
        "end to end: the command's work (csv in, model load, csv out).",
        "",
        f"| texts | rows | max_length | textft auto (scoring) | textft fp32 (scoring) | textft-predict auto (end to end) "
        f"| pipeline b{b} fp32 | pipeline b{b} bf16 | auto vs pipeline fp32 | auto vs pipeline bf16 "
        f"| padding b{b} unsorted / sorted | auto: same label as pipeline fp32 | auto: max prob diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["sets"].items():
        rps, pad = r["rows_per_s"], r["padding_waste"]
        agree = r["agreement_with_pipeline_fp32"]["textft_score_auto"]
        lines.append(
            f"| {name} | {r['rows']} | {r['max_length']} | {rps['textft_score_auto']} | {rps['textft_score_float32']} "
            f"| {rps['textft_predict_auto']} | {rps[f'pipeline_b{b}_fp32']} | {rps[f'pipeline_b{b}_bf16']} "
            f"| **{r['speedup_vs_pipeline_fp32']}x** | {r['speedup_vs_pipeline_bf16']}x "
            f"| {pad[f'unsorted_b{b}']:.0%} / {pad[f'sorted_b{b}']:.0%} "
            f"| {agree['same_label']:.1%} | {agree['max_abs_prob_diff']:.1e} |"
        )
    lines += [
        "",
        "rows/s. The tokenizer's share of textft's scoring time: "
        + ", ".join(f"{n} {r['tokenizer_share_of_textft_auto']:.1%}" for n, r in report["sets"].items())
        + ".",
        "",
        f"Wall time of the benchmark: {report['wall_seconds']} s; load average at the end: {report['load_average_end']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
