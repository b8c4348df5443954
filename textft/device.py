"""What the device computes well: the one place that picks the precision of training (`train.bf16: auto`) and of
textft-predict (`dtype=auto`).

- CUDA: bf16 where the GPU has it (Ampere and newer), else fp16; TF32 matmuls are train_arguments' `tf32: auto`.
- A CPU with native bf16 (Intel AMX, or AVX512-BF16 as on AMD Zen 4 and Intel Cooper Lake): bf16, for prediction
  (weights held in bf16) and for training in the modes where bf16 autocast measured as accurate as fp32
  (CPU_BF16_TRAIN_MODES; benchmarks/results/bf16_train.md: all four, same test accuracy, 1.6-2.5x the samples/s).
- Any other CPU: fp32 (bf16 is emulated there, and slower).

The CPU probe reads the flags of /proc/cpuinfo, else asks torch (other operating systems); tests replace
`cpu_bf16_support` to check every branch on any machine.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("textft")

# modes that train under bf16 autocast on a bf16 CPU with `train.bf16: auto`: those measured as accurate as fp32
# (benchmarks/results/bf16_train.md); a new mode stays fp32 there until it is measured
CPU_BF16_TRAIN_MODES = frozenset({"full", "freeze_embeddings", "head_only", "lora"})


@dataclass(frozen=True)
class Precision:
    """A precision choice and why: `dtype` is float32, bfloat16 or float16."""

    device: str  # cuda | cpu | other accelerator name
    dtype: str
    reason: str

    def __str__(self) -> str:
        return f"{self.dtype} on {self.device} ({self.reason})"


@lru_cache(maxsize=1)
def cpu_bf16_support() -> str | None:
    """'amx_bf16' or 'avx512_bf16' when this CPU computes bf16 natively, else None."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    if any(line.startswith("flags") for line in text.splitlines()):
        return bf16_flag(text)
    import torch  # no /proc/cpuinfo (macOS, Windows): torch's own CPU probe

    cpu = getattr(torch, "cpu", None)
    if cpu is not None and getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "amx_bf16"
    if cpu is not None and getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "avx512_bf16"
    return None


def bf16_flag(cpuinfo: str) -> str | None:
    """The native-bf16 flag in a /proc/cpuinfo text ('amx_bf16' before 'avx512_bf16'), or None."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _cuda_precision() -> Precision:
    import torch

    name = torch.cuda.get_device_name()
    if torch.cuda.is_bf16_supported():
        return Precision("cuda", "bfloat16", f"{name} computes bf16")
    return Precision("cuda", "float16", f"{name} has no bf16; fp16 instead")


def _cpu_precision() -> Precision:
    support = cpu_bf16_support()
    if support:
        return Precision("cpu", "bfloat16", f"CPU with native bf16 ({support})")
    return Precision(
        "cpu", "float32", "CPU without native bf16 (no amx_bf16 or avx512_bf16 flag): bf16 would be slower"
    )


def predict_precision(device: str) -> Precision:
    """The dtype textft-predict holds the model in under dtype=auto, on `device` (cpu, cuda, cuda:N, mps, ...)."""
    if device.startswith("cuda"):
        return _cuda_precision()
    if device == "cpu":
        return _cpu_precision()
    return Precision(device, "float32", "no measured faster precision for this device")


def train_precision(mode: str = "full") -> Precision:
    """The precision `train.bf16: auto` trains in: bf16 autocast (fp32 master weights) or fp32, for a training mode."""
    import torch

    if torch.cuda.is_available():
        choice = _cuda_precision()
        if choice.dtype != "bfloat16":  # auto never turns fp16 on by itself: fp16 needs a loss scaler, ask for it
            return Precision("cuda", "float32", f"{choice.reason}; set train.fp16=true for fp16")
        return choice
    if _has_other_accelerator():
        return Precision("accelerator", "float32", "bf16 auto is decided for CUDA and CPUs only")
    choice = _cpu_precision()
    if choice.dtype == "bfloat16" and mode not in CPU_BF16_TRAIN_MODES:
        return Precision("cpu", "float32", f"mode {mode} was not measured as accurate under bf16 on CPU")
    return choice


def _has_other_accelerator() -> bool:
    import torch

    accelerator = getattr(torch, "accelerator", None)
    return bool(accelerator is not None and accelerator.is_available())


_announced: set[str] = set()


def announce(what: str, choice: Precision) -> None:
    """Log a precision choice once per process (train_arguments and predict may be asked more than once)."""
    line = f"{what} precision: {choice}"
    if line not in _announced:
        _announced.add(line)
        log.info(line)


def variable_length_attention(device):
    """A context for batches whose length changes every step (textft pads per batch): on CUDA, SDPA may use flash,
    memory-efficient or math attention but not cuDNN's, which builds an execution plan for every new shape (measured on
    an H200: ~2 ms of CPU per attention call, which made a bf16 MiniLM step CPU-bound at 0.53x fp32;
    benchmarks/results/gpu_h200). Elsewhere it changes nothing."""
    import torch

    if torch.device(device).type != "cuda":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
