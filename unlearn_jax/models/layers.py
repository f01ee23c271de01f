"""Input preprocessing shared by all models."""
import jax.numpy as jnp


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
  """The dtype of a model's activations: 'float32' or 'bfloat16' (mixed precision: parameters,
  optimizer state, BatchNorm statistics and the loss stay float32)."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"Unknown compute_dtype {name!r}; allowed: {sorted(COMPUTE_DTYPES)}.")
  return COMPUTE_DTYPES[name]


def preprocess(x: jnp.ndarray, spatial_dims: int | None = None,
               dtype=jnp.float32) -> jnp.ndarray:
  """Maps raw inputs to `dtype`: uint8 images to roughly zero mean, unit scale.

  With `spatial_dims` set (convolutional models), 1-D signals (N, L) gain a channel axis so the
  same model code runs on signals (N, L, 1) and images (N, H, W, C).
  """
  if x.dtype == jnp.uint8:
    x = (x.astype(jnp.float32) / 255.0 - 0.5) / 0.25
  x = x.astype(jnp.float32).astype(dtype)
  if spatial_dims is not None and x.ndim == 2:
    x = x[..., None]
  return x
