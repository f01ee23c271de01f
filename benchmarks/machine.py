"""What machine a benchmark ran on, and the peak FLOP/s that achieved figures are compared with.

CPU reference peak: what this process's CPUs deliver on a 2048 x 2048 float32 matmul compiled by
XLA (`matmul_flops`, measured when the record is made). Datasheet-style estimates miss on
virtual machines both ways: on a 2-core Zen 5 EPYC guest the estimate below says 332 GFLOP/s
(166 before it knew Zen 5) and the matmul runs at 340-450 (turbo clock); on a 2-core Xeon guest
the estimate said 333 and the matmul ran at 131-280 as the host's load varied. The estimate is
kept next to it:
    logical CPUs available to this process x clock x fp32 FLOPs per cycle per core,
where FLOPs per cycle come from the widest FMA instructions /proc/cpuinfo lists, assuming two FMA
pipes per core (2 pipes x lanes x 2 FLOPs per FMA):
    avx512f, Intel: 64 (some Xeon SKUs have one 512-bit FMA pipe: 32);
    avx512f, AMD:   32 (Zen 4 runs 512-bit FMAs as two 256-bit halves); CPU family 26 and
                    later (Zen 5): 64;
    avx2 + fma:     32;  avx: 16;  otherwise 8 (SSE).
The clock is the maximum frequency from cpufreq when the kernel exposes it, else the
"@ x.xxGHz" in the model name, else the current "cpu MHz" (often the base clock in VMs, so turbo
makes fractions above the estimate possible). Hyperthreads share FMA pipes, so on SMT machines
this overstates the peak by up to 2x. Pass `--peak-flops` to use a known figure instead.

GPU peak: dense (no sparsity) datasheet numbers keyed by `device_kind`. float32 matmuls and
convolutions run on tensor cores in TF32 under JAX's default precision, so TF32 is the reference
for our float32 models; fp32 (CUDA cores) and bf16 are recorded alongside.
"""
from __future__ import annotations

import os
import platform
import re
import time
from typing import Optional

import jax
import jax.numpy as jnp

# Dense TFLOP/s from NVIDIA datasheets (the sparse figures are twice these). Matched in order
# by substring of device_kind, so the specific names come first: an SXM H100 reports
# "NVIDIA H100 80GB HBM3", the PCIe card "NVIDIA H100 PCIe".
GPU_PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H200", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)
GPU_REFERENCE_DTYPE = "tf32"


def _cpuinfo() -> dict[str, str]:
  """First value of each key of /proc/cpuinfo ({} where there is none, e.g. macOS)."""
  info: dict[str, str] = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, sep, value = line.partition(":")
        if sep:
          info.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  return info


def _num_cpus() -> int:
  try:
    return len(os.sched_getaffinity(0))  # what this process may use, not the whole host
  except AttributeError:
    return os.cpu_count() or 1


def _cpu_clock_ghz(info: dict[str, str]) -> tuple[Optional[float], str]:
  try:
    with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
      return int(f.read()) / 1e6, "cpufreq max"
  except (OSError, ValueError):
    pass
  match = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
  if match:
    return float(match.group(1)), "model name"
  if "cpu MHz" in info:
    return float(info["cpu MHz"]) / 1e3, "cpu MHz (current)"
  return None, "unknown"


def _flops_per_cycle(info: dict[str, str]) -> tuple[int, str]:
  flags = set(info.get("flags", "").split())
  amd = "AMD" in info.get("vendor_id", "")
  if "avx512f" in flags:
    if not amd:
      return 64, "avx512, 2 FMA pipes"
    if int(info.get("cpu family", "0") or 0) >= 26:
      return 64, "avx512 on AMD Zen 5 (family 26), 2 full-width FMA pipes"
    return 32, "avx512 on AMD (Zen 4 style)"
  if "avx2" in flags and "fma" in flags:
    return 32, "avx2+fma, 2 FMA pipes"
  if "avx" in flags:
    return 16, "avx"
  return 8, "sse"


def cpu_peak(info: Optional[dict[str, str]] = None) -> tuple[Optional[float], str]:
  """(estimated fp32 FLOP/s of this process's CPUs, the assumption in words)."""
  info = _cpuinfo() if info is None else info
  cpus = _num_cpus()
  ghz, clock_source = _cpu_clock_ghz(info)
  per_cycle, isa = _flops_per_cycle(info)
  if ghz is None:
    return None, "clock unknown; pass --peak-flops"
  return (cpus * ghz * 1e9 * per_cycle,
          f"{cpus} cpus x {ghz:.2f} GHz ({clock_source}) x {per_cycle} fp32 FLOP/cycle ({isa})")


def matmul_flops(n: int = 2048, min_seconds: float = 1.0) -> float:
  """FLOP/s of an n x n float32 matmul compiled by XLA on the default device (best of repeats
  until `min_seconds` have passed, after one call that compiles)."""
  a = jnp.ones((n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, a))
  best, spent = float("inf"), 0.0
  while spent < min_seconds:
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    took = time.perf_counter() - start
    best, spent = min(best, took), spent + took
  return 2 * n**3 / best


def gpu_peaks(device_kind: str) -> Optional[dict[str, float]]:
  """Dense peak FLOP/s by dtype for a known accelerator, else None."""
  for name, tflops in GPU_PEAK_TFLOPS:
    if name.lower() in device_kind.lower():
      return {k: v * 1e12 for k, v in tflops.items()}
  return None


def describe(peak_override: Optional[float] = None) -> dict:
  """The machine record stored with every result, including the reference peak FLOP/s."""
  info = _cpuinfo()
  device = jax.devices()[0]
  out = {
      "backend": jax.default_backend(),
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
      "cpu_model": info.get("model name", platform.processor() or "unknown"),
      "cpu_count": _num_cpus(),
      "jax_version": jax.__version__,
      "jaxlib_version": _jaxlib_version(),
      "python": platform.python_version(),
  }
  if out["backend"] == "cpu":
    estimate, estimate_why = cpu_peak(info)
    peak = matmul_flops()
    out["peaks"] = {"fp32_matmul": peak, **({"fp32_estimate": estimate} if estimate else {})}
    why = (f"2048x2048 float32 XLA matmul measured at {peak / 1e9:.0f} GFLOP/s (estimate from "
           f"cpuinfo: {_giga(estimate)}GFLOP/s = {estimate_why})")
  else:
    peaks = gpu_peaks(device.device_kind)
    out["peaks"] = peaks or {}
    peak = peaks[GPU_REFERENCE_DTYPE] if peaks else None
    why = (f"{device.device_kind}: dense {GPU_REFERENCE_DTYPE} datasheet figure (float32 matmuls "
           "use TF32 under JAX's default precision)" if peaks else
           f"no table entry for {device.device_kind!r}; pass --peak-flops")
  if peak_override:
    peak, why = float(peak_override), "given with --peak-flops"
  out["peak_flops"] = peak
  out["peak_assumption"] = why
  return out


def _giga(flops: Optional[float]) -> str:
  return "?" if flops is None else f"{flops / 1e9:.0f}"


def _jaxlib_version() -> Optional[str]:
  try:
    import jaxlib  # pylint: disable=g-import-not-at-top
    return jaxlib.__version__
  except (ImportError, AttributeError):
    return None


def slug(machine: dict) -> str:
  """A file-name-safe machine name, e.g. 'cpu-amd-epyc' or 'gpu-nvidia-h100-80gb-hbm3'."""
  name = machine["cpu_model"] if machine["backend"] == "cpu" else machine["device_kind"]
  return re.sub(r"[^a-z0-9]+", "-", f"{machine['backend']}-{name}".lower()).strip("-")
