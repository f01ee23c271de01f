"""A step's matrix products as OpenBLAS custom calls (XLA FFI): what a BLAS gives an XLA:CPU step.

`dots-blas` (step_dots.py) showed OpenBLAS doing the width-64 MLP step's products alone faster
than XLA's dot kernels. This module puts those products inside the real step: `dot_general()`
is a drop-in for the `dot_general` of the MLP's Dense layers whose forward and backward
products are one `cblas_sgemm` per member (blas_call.cc), so XLA keeps everything else (the
gather, the elementwise work, the loss, the update) and the step runs with its usual strategy.
`dot_general(compute=False)` makes every product a zero fill instead: the time of everything
but the products. benchmarks/training.py times both as the `-blas` and `-nodots` rows.

The custom call is built here with the system C++ compiler (`$CXX`, else `c++`) against the
FFI headers jaxlib ships, once per source and jaxlib version, into the temporary directory. It
calls the OpenBLAS numpy loaded (found with threadpoolctl), float32 only, on XLA:CPU only.
A benchmark tool: the library itself never needs a compiler.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import jaxlib
import threadpoolctl

SOURCE = os.path.join(os.path.dirname(__file__), "blas_call.cc")
TARGET = "unlearn_jax_benchmarks_batched_sgemm"


def unavailable_reason() -> str | None:
  """Why the custom call cannot run here (no compiler, no OpenBLAS, not CPU), or None."""
  if jax.default_backend() != "cpu":
    return f"the BLAS custom call runs on XLA:CPU only; this backend is {jax.default_backend()!r}"
  if not shutil.which(compiler()):
    return f"building the BLAS custom call needs a C++ compiler; {compiler()!r} is not on PATH"
  try:
    _openblas()
  except RuntimeError as e:
    return str(e)
  return None


def compiler() -> str:
  return os.environ.get("CXX", "c++")


def build() -> str:
  """Path of the compiled custom call, built if missing (atomically: parallel builds are safe)."""
  with open(SOURCE, "rb") as f:
    source = f.read()
  key = hashlib.sha256(source + jaxlib.__version__.encode() + compiler().encode()).hexdigest()
  path = os.path.join(tempfile.gettempdir(), f"unlearn_jax_blas_call_{key[:16]}.so")
  if not os.path.exists(path):
    partial = f"{path}.{os.getpid()}.tmp"
    command = [compiler(), "-O2", "-std=c++17", "-shared", "-fPIC", "-w",
               f"-I{jax.ffi.include_dir()}", SOURCE, "-o", partial]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
      raise RuntimeError(f"building {SOURCE} failed ({' '.join(command)}):\n{done.stderr}")
    os.replace(partial, path)
  return path


def _openblas() -> tuple[ctypes.CDLL, str, str]:
  """(numpy's OpenBLAS, its symbol prefix, its symbol suffix): scipy-openblas wheels name
  `cblas_sgemm` `scipy_cblas_sgemm64_` (64-bit integers) or `scipy_cblas_sgemm`. numpy, and
  with it its BLAS, is loaded by jax's import."""
  found = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
  for info in found:
    if info["internal_api"] != "openblas":
      continue
    lib = ctypes.CDLL(info["filepath"])
    for prefix in ("scipy_", ""):
      for suffix in ("64_", ""):
        if hasattr(lib, f"{prefix}cblas_sgemm{suffix}"):
          return lib, prefix, suffix
  raise RuntimeError("the BLAS custom call needs the OpenBLAS numpy loads; numpy's BLAS here is "
                     f"{[i['internal_api'] for i in found] or 'not found'}")


@functools.cache
def register() -> None:
  """Builds, loads and registers the custom call (once per process)."""
  reason = unavailable_reason()
  if reason:
    raise RuntimeError(reason)
  blas, prefix, suffix = _openblas()
  config = getattr(blas, f"{prefix}openblas_get_config{suffix}")
  config.restype = ctypes.c_char_p
  ilp64 = b"USE64BITINT" in config()
  # One BLAS thread per calling thread: XLA already runs the member chunks one per core.
  local = next((getattr(blas, name) for name in (
      f"{prefix}openblas_set_num_threads_local{suffix}", "openblas_set_num_threads_local")
                if hasattr(blas, name)), None)
  if local is None:  # older OpenBLAS: one thread for the whole process instead
    getattr(blas, f"{prefix}openblas_set_num_threads{suffix}")(1)
  call = ctypes.CDLL(build())
  address = lambda fn: ctypes.cast(fn, ctypes.c_void_p)
  call.blas_call_set_blas(address(getattr(blas, f"{prefix}cblas_sgemm{suffix}")),
                          ctypes.c_int(ilp64), address(local) if local is not None else None)
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(call.BlasCallBatchedSgemm),
                              platform="cpu")


def batched_matmul(a, b, trans_a: bool = False, trans_b: bool = False, compute: bool = True):
  """op(a) @ op(b) over the last two axes (op transposes when asked), leading axes batched."""
  register()
  if a.dtype != jnp.float32 or b.dtype != jnp.float32:
    raise ValueError(f"the BLAS custom call multiplies float32 only; got {a.dtype} @ {b.dtype}.")
  m = a.shape[-1] if trans_a else a.shape[-2]
  n = b.shape[-2] if trans_b else b.shape[-1]
  out = jax.ShapeDtypeStruct(a.shape[:-2] + (m, n), jnp.float32)
  # Under vmap the member axis becomes a leading batch axis of the same call.
  return jax.ffi.ffi_call(TARGET, out, vmap_method="broadcast_all")(
      a, b, trans_a=trans_a, trans_b=trans_b, compute=compute)


@functools.cache
def matmul(compute: bool = True):
  """`x @ w` for x (m, k) and w (k, n) with its two gradient products as custom calls too."""
  @jax.custom_vjp
  def product(x, w):
    return batched_matmul(x, w, compute=compute)

  def forward(x, w):
    return product(x, w), (x, w)

  def backward(residuals, g):
    x, w = residuals
    return (batched_matmul(g, w, trans_b=True, compute=compute),
            batched_matmul(x, g, trans_a=True, compute=compute))

  product.defvjp(forward, backward)
  return product


@functools.cache
def dot_general(compute: bool = True):
  """A `dot_general` for flax's Dense (`inputs[..., k] @ kernel[k, n]`) through the custom call;
  compute=False: zero fills in place of the products."""
  product = matmul(compute)

  def dense_dot_general(lhs, rhs, dimension_numbers, precision=None,
                        preferred_element_type=None):
    del precision, preferred_element_type  # float32 in, float32 out
    dense = (((lhs.ndim - 1,), (0,)), ((), ()))
    if rhs.ndim != 2 or tuple(map(tuple, dimension_numbers[0])) != dense[0] or any(
        dimension_numbers[1]):
      raise ValueError(f"the BLAS custom call does Dense products only ({dense}); got "
                       f"{dimension_numbers} for shapes {lhs.shape} and {rhs.shape}.")
    rows = lhs.reshape(-1, lhs.shape[-1])
    return product(rows, rhs).reshape(*lhs.shape[:-1], rhs.shape[-1])

  return dense_dot_general
