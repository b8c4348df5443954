"""textft-export: a run's classifier as ONNX, checked against the PyTorch model on real rows.

    textft-export outputs/bbc_minilm                       # -> outputs/bbc_minilm/onnx
    textft-predict model=outputs/bbc_minilm/onnx input=new.csv output=scored.csv   # runs it with ONNX Runtime

torch.onnx.export (the dynamo exporter; optimum's exporter does not support transformers 5) writes model.onnx with
dynamic batch and sequence axes; config.json (id2label, problem_type), the tokenizer or image processor files and the
run's recipe.yaml / inference.json go beside it, so textft-predict reads the folder like a run directory. The parity check
scores the same real rows (the run's test file, else validation, else train; or input=FILE) through textft-predict's
scoring with both models and writes export_report.json: rows, rows with the same label, max probability difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import logging
import shutil
import time
from dataclasses import dataclass
from types import SimpleNamespace

from omegaconf import MISSING

from textft.cli import run_command
from textft.config import TextftError, write_text_atomic

log = logging.getLogger("textft")

USAGE = """usage: textft-export RUN_DIR [out=RUN_DIR/onnx] [key=value ...]

  RUN_DIR            a textft run directory (a LoRA run: its merged model, the run directory itself)
  out=DIR            where model.onnx, config.json, the tokenizer / image processor and export_report.json go
  input=FILE         real rows for the parity check (default: the run's test file, else validation, else train)
  rows=64            rows compared; batch_size=16; opset=N (default: the exporter's)
  max_prob_diff=1e-3 the largest probability difference accepted (the same label on every row is required too)

Needs the [onnx] extra: pip install 'textft[onnx]' (onnx, onnxscript, onnxruntime).
"""

REPORT = "export_report.json"
RUN_FILES = ("recipe.yaml", "inference.json")  # copied beside model.onnx when the run has them


@dataclass
class ExportConfig:
    model: str = MISSING  # the run directory
    out: str | None = None  # default: RUN_DIR/onnx
    input: str | None = None  # parity rows; default: the run's test, validation or train file
    rows: int = 64
    batch_size: int = 16
    opset: int | None = None
    max_prob_diff: float = 1e-3


class OnnxClassifier:
    """An ONNX Runtime session that textft-predict scores like a transformers classifier: `.config`, `.device`,
    `__call__(**batch)` -> an object whose `.logits` is a torch tensor."""

    def __init__(self, model_dir: str | Path, device: str = "cpu") -> None:
        import onnxruntime as ort
        import torch
        from transformers import AutoConfig

        model_dir = Path(model_dir)
        self.config = AutoConfig.from_pretrained(model_dir)
        cuda = device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.device = torch.device("cpu")  # batches reach the session as numpy arrays from host memory

    def __call__(self, **batch):
        import torch

        missing = [name for name in self.input_names if name not in batch]
        if missing:
            raise TextftError(f"the ONNX model needs input '{missing[0]}', which the batch lacks ({', '.join(batch)})")
        feed = {name: batch[name].detach().cpu().numpy() for name in self.input_names}
        (logits,) = self.session.run(["logits"], feed)
        return SimpleNamespace(logits=torch.from_numpy(logits))

    def to(self, device) -> OnnxClassifier:
        return self

    def eval(self) -> OnnxClassifier:
        return self


def load_onnx_classifier(model_dir: Path, auto_processor, device: str):
    """(OnnxClassifier, processor) for an exported folder: textft-predict's load_classifier for model.onnx."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise TextftError(
            f"model: {model_dir} is an ONNX export; install onnxruntime: pip install 'textft[onnx]'"
        ) from None
    return OnnxClassifier(model_dir, device), auto_processor.from_pretrained(model_dir)


def _logits_module(model, names: list[str]):
    """The classifier as a module of plain tensors in, logits out (what the exporter traces)."""
    import torch

    class TextLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.model(**{k: v for k, v in given.items() if v is not None}).logits

    class ImageLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).logits

    if names == ["pixel_values"]:
        return ImageLogits().eval()
    order = ["input_ids", "attention_mask", "token_type_ids"]
    if names != order[: len(names)]:
        raise TextftError(f"model inputs {names} are not supported for export; expected {order} or pixel_values")
    return TextLogits().eval()


def parity_input(s: ExportConfig, run_dir: Path) -> str:
    """The file of real rows to compare on: input=, else the run's test, validation or train file (its recipe.yaml)."""
    if s.input:
        return s.input
    if (run_dir / "recipe.yaml").is_file():
        from textft.config import load_recipe

        files = load_recipe(str(run_dir / "recipe.yaml")).data.files
        for path in (files.test, files.validation, files.train):
            if path and Path(path).is_file():
                return path
    raise TextftError("input: the run's recipe names no local data file to check parity on; pass input=FILE")


def compare(problem, torch_logits, onnx_logits) -> tuple[int, float]:
    """(rows with the same decisions, the largest difference of a decoded number: probability, or value for
    regression), both sides decoded by the run's problem type as textft-predict decodes them."""
    import numpy as np

    ours, theirs = problem.decode(torch_logits, ""), problem.decode(onnx_logits, "")
    same = np.ones(len(torch_logits), dtype=bool)
    diff = 0.0
    for name, values in ours.items():
        a, b = np.asarray(values), np.asarray(theirs[name])
        if a.dtype.kind == "f":
            diff = max(diff, float(np.abs(a - b).max(initial=0.0)))
        else:
            same &= np.asarray([x == y for x, y in zip(a, b, strict=True)], dtype=bool)
    return int(same.sum()), diff


def export(s: ExportConfig) -> dict:
    """Export s.model to ONNX in s.out, check parity on real rows, write export_report.json; return the report."""
    import torch

    from textft.inference import INPUTS, load_classifier, run_info, run_problem, score_rows
    from textft.predict import PredictConfig, resolve_settings
    from textft.predict_files import read_chunks

    run_dir = Path(s.model)
    if not (run_dir / "config.json").is_file():
        raise TextftError(
            f"model: {run_dir} has no config.json; give a textft run directory (for LoRA: the run, not adapter/)"
        )
    if s.rows < 1 or s.batch_size < 1:
        raise TextftError(f"rows={s.rows} and batch_size={s.batch_size} must be positive")
    out = Path(s.out) if s.out else run_dir / "onnx"
    info = run_info(run_dir)
    settings = PredictConfig(model=str(run_dir), input="", output="", device="cpu", dtype="float32", progress=False)
    model, processor = load_classifier(run_dir, info.get("task", "text"), settings)
    settings, task = resolve_settings(settings, info, processor)
    problem = run_problem(info, model.config)
    settings.input, settings.chunk_size, settings.batch_size = parity_input(s, run_dir), s.rows, s.batch_size
    rows = next(read_chunks(settings, task))
    if len(rows) == 0:
        raise TextftError(f"input: {settings.input} has no rows to check parity on")
    inputs = INPUTS[task](processor, settings)
    missing = [c for c in inputs.columns if c not in rows.columns]
    if missing:
        raise TextftError(f"input: column '{missing[0]}' not found in {settings.input}; pass input=FILE with it")

    # 1. export, traced on two real rows; batch (and sequence) sizes stay free
    features, _, _ = inputs.encode(rows.iloc[:2])
    example = inputs.collate(features)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids", "pixel_values") if n in example]
    axes = {n: {0: "batch"} if n == "pixel_values" else {0: "batch", 1: "sequence"} for n in names}
    staging = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started = time.perf_counter()
    program = torch.onnx.export(
        _logits_module(model, names),
        tuple(example[n] for n in names),
        input_names=names,
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=s.opset,
        dynamo=True,
    )
    program.save(str(staging / "model.onnx"))  # one file; weights go to model.onnx.data only past protobuf's 2 GB
    export_seconds = time.perf_counter() - started
    model.config.save_pretrained(staging)
    processor.save_pretrained(staging)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, staging / name)

    # 2. parity: the same rows through textft-predict's scoring, PyTorch and ONNX Runtime
    started = time.perf_counter()
    torch_logits = score_rows(rows, inputs, model, settings)
    torch_seconds = time.perf_counter() - started
    onnx_model = OnnxClassifier(staging)
    started = time.perf_counter()
    onnx_logits = score_rows(rows, inputs, onnx_model, settings)
    onnx_seconds = time.perf_counter() - started
    same, diff = compare(problem, torch_logits, onnx_logits)
    import onnx
    import onnxruntime

    report = {
        "model": str(run_dir),
        "onnx": str(out / "model.onnx"),
        "opset": onnx.load(str(staging / "model.onnx"), load_external_data=False).opset_import[0].version,
        "inputs": names,
        "problem_type": problem.name,
        "parity_input": settings.input,
        "rows": len(rows),
        "same_label_rows": same,
        "max_prob_diff": diff,  # regression: the largest difference of the predicted value
        "export_seconds": round(export_seconds, 1),
        "torch_seconds": round(torch_seconds, 3),
        "onnxruntime_seconds": round(onnx_seconds, 3),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
    }
    write_text_atomic(staging / REPORT, json.dumps(report, indent=2))
    if same != len(rows) or diff > s.max_prob_diff:
        raise TextftError(
            f"ONNX parity failed: {same} of {len(rows)} rows have the same label, max probability difference {diff:.2e} "
            f"(allowed {s.max_prob_diff}); the export is left in {staging} for a look ({REPORT})"
        )
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    log.info("exported to %s: %d/%d rows agree, max probability difference %.2e", out, same, len(rows), diff)
    return report


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and "=" not in argv[0] and not argv[0].startswith("-"):
        argv[0] = f"model={argv[0]}"  # textft-export RUN_DIR ...
    run_command(export, ExportConfig, USAGE, "textft-export", argv)


if __name__ == "__main__":
    main()
