"""Throughput benchmarks of unlearn_jax: training, unlearning, padding, decision regions, sweep.

Run everything with one command (see benchmarks/README.md):

    python -m benchmarks.run [--quick] [--only=train,unlearn,...] [--out=benchmarks/results/x.json]
"""
