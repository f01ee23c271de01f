"""Input preprocessing shared by all models."""
import jax.numpy as jnp


def preprocess(x: jnp.ndarray, spatial_dims: int | None = None) -> jnp.ndarray:
  """Maps raw inputs to float32: uint8 images to roughly zero mean, unit scale.

  With `spatial_dims` set (convolutional models), 1-D signals (N, L) gain a channel axis so the
  same model code runs on signals (N, L, 1) and images (N, H, W, C).
  """
  if x.dtype == jnp.uint8:
    x = (x.astype(jnp.float32) / 255.0 - 0.5) / 0.25
  x = x.astype(jnp.float32)
  if spatial_dims is not None and x.ndim == 2:
    x = x[..., None]
  return x
