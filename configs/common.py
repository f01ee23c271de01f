"""Config pieces shared by every experiment config.

Static settings (widths, batch size, epochs) change array shapes and compiled programs; dynamic
ones (seeds, learning rates, method coefficients) become data on the vmapped member axis.
"""
import ml_collections


def parse_arg(arg: str | None, **defaults):
  """Parses 'key=value,flag,...' (as in big_vision): bare keys are True, values typed by default."""
  out = ml_collections.ConfigDict(defaults)
  for item in (arg or "").split(","):
    if not item:
      continue
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r}; allowed: {sorted(defaults)}.")
    kind = type(defaults[key])
    out[key] = (value.lower() in ("1", "true", "yes", "")) if kind is bool else kind(value)
  return out


def base_config() -> ml_collections.ConfigDict:
  """Defaults every config starts from."""
  c = ml_collections.ConfigDict()
  c.dataset = ml_collections.ConfigDict(dict(
      name="mnist1d", kwargs={}, val_fraction=0.2, forget_size=200, forget_mode="uniform",
      forget_classes=(), label_noise=0.0, split_seed=0))
  c.model = ml_collections.ConfigDict(dict(name="mlp", kwargs={}))
  c.widths = (8, 64, 512)
  c.bucket_max_ratio = 4.0   # widths within this ratio share one padded, vmapped bucket
  c.seeds = (0, 1, 2)
  c.train = ml_collections.ConfigDict(dict(
      optimizer="sgd", schedule="cosine", learning_rate=0.05, weight_decay=5e-4, momentum=0.9,
      epochs=100, batch_size=128, augment=False, checkpoint_every=20))
  c.strategy = "auto"        # 'auto' or '<member_chunk>,<scan|host>'
  c.eval_batch_size = 1024
  c.compilation_cache_dir = "~/.cache/unlearn_jax/jax_cache"   # '' disables it
  return c


def shrink_for_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks any config so the whole pipeline runs in well under a minute on a CPU."""
  c.widths = tuple(sorted(c.widths))[:1] + tuple(sorted(c.widths))[-1:]
  c.widths = tuple(min(w, 16) if c.model.name == "mlp" else min(w, 4) for w in c.widths)
  c.widths = tuple(sorted(set(c.widths)))
  c.seeds = tuple(c.seeds)[:2]
  c.train.epochs = 3
  c.train.checkpoint_every = 1
  c.dataset.forget_size = min(c.dataset.forget_size, 20)
  if c.dataset.name not in ("mnist1d", "synthetic"):
    c.dataset.name, c.dataset.kwargs = "synthetic", {"image_size": 8, "num_train": 200,
                                                     "num_test": 100, "num_classes": 10}
  return c
