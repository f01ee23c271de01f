"""Input preprocessing and the layer structure shared by all models."""
import jax
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


def layer_groups(model, sample_x) -> tuple[tuple[str, ...], ...]:
  """The model's layers in call order, each a tuple of top-level variable names.

  A layer is a top-level parameterised submodule (a Dense, a Conv, a residual block); a
  BatchNorm joins the layer before it, which it normalises. What "the last k layers" (CF-k,
  EU-k) or "the first layer" (weight negation) mean follows from this, for every model:
  MLP (Dense_0, ..., Dense_depth), CNN ((Conv_i, BatchNorm_i) x 4, Dense_0), ResNet (stem,
  8 blocks, classifier).

  Call order is read from `model.init`'s own dict while it is traced (abstractly, no compute):
  any tree operation afterwards sorts the names.
  """
  order = []

  def init(key):
    variables = model.init(key, sample_x, train=False)
    order.extend(variables["params"])
    return variables

  jax.eval_shape(init, jax.random.key(0))
  groups: list[list[str]] = []
  for name in order:
    if name.startswith("BatchNorm") and groups:
      groups[-1].append(name)
    else:
      groups.append([name])
  return tuple(tuple(g) for g in groups)
