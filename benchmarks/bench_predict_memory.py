"""textft-predict's memory on large inputs: peak RSS when scoring 100k and 1M rows must not grow with the row count.

    python -m textft.train recipe=bbc_minilm_head_only data.max_length=32 train.num_train_epochs=1 output_dir=RUN
    nice -n 5 python benchmarks/bench_predict_memory.py --run RUN --rows 100000 1000000

Each size is one CSV of short real texts (BBC News sentences, cycled; an id column and the text) scored end to end by
textft-predict (csv in, csv out, chunks of --chunk-size rows) in a fresh process. A thread in that process samples its
resident set size (VmRSS) every --every seconds; the process's ru_maxrss is its peak. Writes
benchmarks/results/predict_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the child: predict() with an RSS sampler; prints one JSON line
CHILD = """
import json, resource, sys, threading, time
every, settings = float(sys.argv[1]), sys.argv[2:]

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

samples, done = [], threading.Event()
started = time.perf_counter()

def sample():
    while not done.wait(every):
        samples.append((round(time.perf_counter() - started, 1), round(rss_mib(), 1)))

threading.Thread(target=sample, daemon=True).start()
from textft.cli import parse_settings
from textft.predict import PredictConfig, predict

summary = predict(parse_settings(PredictConfig, settings, "textft-predict"))
done.set()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"summary": summary, "peak_rss_mib": round(peak, 1), "samples": samples}))
"""


def sentences() -> list[str]:
    """Short real texts: the sentences of the BBC News articles, 20 to 200 characters."""
    from textft.assets import bbc_articles

    found = []
    for text, _ in bbc_articles():
        found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if 20 <= len(s.strip()) <= 200]
    return found


def write_input(path: Path, rows: int, texts: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows((i, texts[i % len(texts)]) for i in range(rows))
    os.replace(tmp, path)


def score(run: str, input_csv: Path, output_csv: Path, args: argparse.Namespace) -> dict:
    settings = [f"model={run}", f"input={input_csv}", f"output={output_csv}", f"max_length={args.max_length}",
                f"batch_size={args.batch_size}", f"chunk_size={args.chunk_size}", "progress=false", "resume=false"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(args.threads)}  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(args.every), *settings], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def machine() -> dict:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def rss_at(samples: list, fraction: float) -> str:
    """The RSS sample (MiB) taken after `fraction` of the run."""
    return f"{samples[min(len(samples) - 1, int(fraction * len(samples)))][1]:.0f}" if samples else "-"


def markdown(report: dict) -> str:
    lines = [
        "# textft-predict memory: peak RSS by input size",
        "",
        f"Model: {report['run']} ({report['model']}); max_length {report['max_length']}, batch {report['batch_size']}, "
        f"chunk {report['chunk_size']} rows, {report['threads']} torch thread(s); csv in, csv out. {report['machine']['cores']} shared CPU cores.",
        "",
        *([report["note"], ""] if report.get("note") else []),
        "| rows | peak RSS (MiB) | RSS after 10% of the run | RSS at 90% | rows/s | wall (s) | load avg at start |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['rows']:,} | {r['peak_rss_mib']:.0f} | {rss_at(r['samples'], 0.1)} | {rss_at(r['samples'], 0.9)} | {r['summary']['rows_per_s']} | "
            f"{r['wall_s']} | {r['load_average']} |"
        )
    lines += ["", report["conclusion"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained textft run directory (text classifier)")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the scoring process (OMP_NUM_THREADS)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--workdir", default=None, help="where the input and output csv go (default: a temp dir)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    parser.add_argument("--note", default="", help="what the model is (how it was made), written into the results")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    texts = sentences()
    config = json.loads((Path(args.run) / "config.json").read_text())
    report = {
        "run": args.run,
        "model": f"{config.get('_name_or_path') or config['model_type']}, {config['num_hidden_layers']} layers, "
        f"hidden {config['hidden_size']}",
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "threads": args.threads,
        "note": args.note,
        "texts": f"{len(texts)} distinct BBC sentences (20-200 characters), cycled",
        "machine": machine(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for rows in args.rows:
            input_csv, output_csv = Path(tmp) / f"in_{rows}.csv", Path(tmp) / f"out_{rows}.csv"
            write_input(input_csv, rows, texts)
            load = os.getloadavg()
            result = score(args.run, input_csv, output_csv, args)
            assert result["summary"]["rows"] == rows
            result.update(rows=rows, load_average=" ".join(f"{x:.1f}" for x in load))
            result["input_mib"] = round(input_csv.stat().st_size / 2**20, 1)
            result["output_mib"] = round(output_csv.stat().st_size / 2**20, 1)
            report["runs"].append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "samples"}), flush=True)
            input_csv.unlink()
            output_csv.unlink()
    peaks = [r["peak_rss_mib"] for r in report["runs"]]
    report["conclusion"] = (
        f"Peak RSS {min(peaks):.0f}-{max(peaks):.0f} MiB over {report['runs'][0]['rows']:,}-"
        f"{report['runs'][-1]['rows']:,} rows: a {report['runs'][-1]['rows'] // report['runs'][0]['rows']}x larger "
        f"input changes the peak by {peaks[-1] - peaks[0]:+.0f} MiB."
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("predict_memory.json", json.dumps(report, indent=2)), ("predict_memory.md", markdown(report))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    print(report["conclusion"])


if __name__ == "__main__":
    main()
