"""The fast path: switches that change how an update runs, never what it computes.

Kept apart from the math (agent.py) so a reader of the update sees only the algorithm. With
config.fast on (the default):
  - autocast to bf16 on a CUDA GPU that has it (distributions and losses stay fp32); on the CPU
    only when asked (`--precision bf16`): even with AVX512-BF16 units it was slower than fp32 for
    the cpu preset's update (docs/results.md, speed);
  - channels-last convolutions on CUDA, with bf16, and in fp32 on AVX512 CPUs (there the cpu
    preset's update costs 0.92x; on AVX2 CPUs they measured slower, so updates there stay plain);
  - fused Adam on CUDA;
  - torch.compile of the update on CUDA (on the CPU it bought 1.08x for minutes of compiling).
tests/test_fast_path.py checks the fast path against the plain eager fp32 one.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

from dreamer_lib.config import Config


def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX), which benchmarks report."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(config: Config, device: torch.device) -> torch.dtype:
    """The autocast dtype: bf16 on a CUDA GPU that supports it or when asked for, else fp32."""
    if config.precision == "fp32" or not config.fast:
        return torch.float32
    if config.precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.float32  # the CPU: bf16 autocast was slower there even with bf16 units (docs/results.md)


def autocast(device: torch.device, dtype: torch.dtype):
    """A context for the loss computations: autocast to `dtype`, or nothing at fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def use_channels_last(config: Config, device: torch.device, precision: torch.dtype) -> bool:
    # Measured faster on CUDA, with bf16, and on AVX512 CPUs in fp32, where the transposed convs
    # of the decoder gain most; slower on AVX2 CPUs in fp32 (docs/results.md).
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    return config.fast and (device.type == "cuda" or precision == torch.bfloat16 or avx512)


def adam(params, lr: float, eps: float, config: Config, device: torch.device) -> torch.optim.Adam:
    fused = dict(fused=True) if config.fast and device.type == "cuda" else {}
    return torch.optim.Adam(params, lr=lr, eps=eps, **fused)


def maybe_compile(fn, config: Config, device: torch.device):
    """torch.compile `fn` when asked (or on CUDA with `auto`); if compiling fails on this machine,
    warn once and run it eagerly: a compiler bug must not stop training."""
    if not (config.compile == "on" or (config.compile == "auto" and config.fast and device.type == "cuda")):
        return fn
    compiled, state = torch.compile(fn), {"ok": True}

    def run(*args):
        if state["ok"]:
            try:
                return compiled(*args)
            except Exception as error:
                state["ok"] = False
                warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); running eagerly.")
        return fn(*args)

    return run
