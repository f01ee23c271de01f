"""unlearn_jax: machine unlearning of width-swept deep networks in JAX."""
