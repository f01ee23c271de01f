"""On-device image augmentation: random crop with zero padding and horizontal flip."""
import jax
import jax.numpy as jnp


def augment_batch(key: jax.Array, images: jax.Array, pad: int = 4, flip: bool = True) -> jax.Array:
  """Augments a batch (B, H, W, C) with per-example random crops and flips.

  Pure and jittable; each example gets its own offsets from `key`, so a member's stream of
  augmentations is fixed by its key.
  """
  if images.ndim != 4:
    return images  # signals are not augmented
  b, h, w, _ = images.shape
  crop_key, flip_key = jax.random.split(key)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offsets = jax.random.randint(crop_key, (b, 2), 0, 2 * pad + 1)

  def crop(img, off):
    return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

  out = jax.vmap(crop)(padded, offsets)
  if flip:
    do_flip = jax.random.bernoulli(flip_key, 0.5, (b,))
    out = jnp.where(do_flip[:, None, None, None], out[:, :, ::-1, :], out)
  return out
