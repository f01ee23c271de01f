"""Per-example losses shared by training, unlearning and evaluation."""
import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy with integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def kl_divergence(teacher_logits: jax.Array, student_logits: jax.Array,
                  temperature: float) -> jax.Array:
  """KL(teacher || student) of temperature-T softmaxes, times T^2 (Hinton et al.), batch mean."""
  t_log = jax.nn.log_softmax(teacher_logits / temperature)
  s_log = jax.nn.log_softmax(student_logits / temperature)
  return (jnp.exp(t_log) * (t_log - s_log)).sum(-1).mean() * temperature**2
