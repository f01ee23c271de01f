"""Datasets as in-memory arrays, train/validation splits, forget sets and on-device augmentation."""
from unlearn_jax.data.augment import augment_batch
from unlearn_jax.data.sources import DATASETS, Dataset, load
from unlearn_jax.data.splits import Splits, add_label_noise, make_forget_set, make_splits, stratified_holdout

__all__ = [
    "DATASETS", "Dataset", "Splits", "add_label_noise", "augment_batch", "load", "make_forget_set",
    "make_splits", "stratified_holdout",
]
