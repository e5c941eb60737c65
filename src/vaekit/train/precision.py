"""Lower-precision training: which precision a device runs fast, and whether ``torch.compile`` can run.

``vaekit.fit(precision="bf16")`` runs the encoder and decoder bodies (the matmuls and
convolutions, where the time goes) under ``torch.autocast`` in bfloat16, and everything
that turns their outputs into numbers that must be exact in float32: the posterior and
likelihood heads, priors, flows, log-densities, KL terms and log-sum-exps
(:meth:`vaekit.models.model.LatentVariableModel.run_body` casts each body's output back to
float32). Weights, gradients and Adam moments stay float32 (mixed precision, Micikevicius
et al. 2018, arXiv:1710.03740).

bfloat16 is fast only where the hardware multiplies it natively: CUDA GPUs that report
``torch.cuda.is_bf16_supported()``, and CPUs with AVX512-BF16 or AMX. Machines of one kind
differ (one cloud CPU has ``avx512_bf16``, the next only ``avx2``), and even a CPU that has
the flag may run torch's bf16 matmul slower than fp32 (measured on this project's machine:
0.55×). So :func:`resolve_precision` reads the CPU flags *and* times one matmul of a
typical layer in each precision (a few milliseconds) and keeps float32, saying so in one
line, when bfloat16 would not be faster.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from pathlib import Path

import torch

from vaekit.errors import ConfigError

__all__ = ["PRECISIONS", "resolve_precision", "bf16_speedup", "cpu_has_native_bf16", "check_compile"]

PRECISIONS = ("fp32", "bf16")
"""Values of ``fit(precision=)`` and ``--precision``."""

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) of hardware bfloat16 dot products."""

MIN_SPEEDUP = 1.1
"""bf16 is used only when its matmul is at least this much faster than fp32 on the device."""


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU lists AVX512-BF16 or AMX-BF16 (read from ``/proc/cpuinfo``; False where unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


@functools.lru_cache(maxsize=None)
def bf16_speedup(device_type: str = "cpu", size: int = 512, repeats: int = 20) -> float:
    """Speed of a (size × size) @ (size × size) matmul in bfloat16 over float32 on this device (> 1: bf16 faster).

    Measured once per process (best of ``repeats`` after a warm-up), on the threads torch uses.
    """
    device = torch.device(device_type)
    a = torch.randn(size, size, device=device)

    def best_time(x: torch.Tensor) -> float:
        for _ in range(3):
            x @ x
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            x @ x
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return min(times)

    return best_time(a) / best_time(a.to(torch.bfloat16))


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """The dtype the bodies run in for ``precision`` on ``device`` (None: float32), and a one-line note when the
    request was not honoured (bf16 would be slower here), else None.

    Raises ``ConfigError`` for an unknown precision, and for bf16 on a CUDA GPU without bfloat16 support.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None, None
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision=bf16: the GPU {torch.cuda.get_device_name(device)} does not support bfloat16; "
                              "train with --precision fp32")
        return torch.bfloat16, None
    if device.type != "cpu":
        raise ConfigError(f"precision=bf16 is supported on CPUs and CUDA GPUs, not on {device.type}; train with --precision fp32")
    speedup = bf16_speedup("cpu")
    if not cpu_has_native_bf16():
        return None, (f"bf16 would be slow on this CPU (no AVX512-BF16 or AMX; its bf16 matmul runs at {speedup:.2f}× fp32): "
                      "training in fp32")
    if speedup < MIN_SPEEDUP:
        return None, (f"bf16 would be slow on this CPU (it has AVX512-BF16, but torch's bf16 matmul runs at {speedup:.2f}× fp32 "
                      "here): training in fp32")
    return torch.bfloat16, None


def check_compile(device: torch.device) -> None:
    """Refuse ``compile=True`` where ``torch.compile`` cannot run, with the reason and the fix in one line.

    On a CPU the compiler (inductor) builds C++: it needs a C++ compiler (``$CXX`` or g++/clang++/c++).
    On CUDA it needs Triton. Failures while compiling a particular model surface at its first step.
    """
    if os.environ.get("TORCHDYNAMO_DISABLE") == "1":
        raise ConfigError("compile=True but TORCHDYNAMO_DISABLE=1 turns torch.compile off in this environment; "
                          "unset it or train without --compile")
    if device.type == "cpu":
        candidates = [os.environ.get("CXX"), "g++", "clang++", "c++"]
        if not any(c and shutil.which(c) for c in candidates):
            raise ConfigError("compile=True needs a C++ compiler on this machine (torch.compile builds CPU kernels in C++): "
                              "install g++ (e.g. apt install g++) or train without --compile")
    elif device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise ConfigError("compile=True on a GPU needs Triton (pip install triton), or train without --compile") from None
