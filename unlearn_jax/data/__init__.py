"""Datasets as in-memory arrays, train/validation splits, forget sets and on-device augmentation.

`validation` turns bad data and sizes into clear errors before anything is compiled: datasets
check themselves when built; `check_sizes` and `check_model_input` are for the caller, who knows
the batch sizes and the model.
"""
from unlearn_jax.data.augment import augment_batch
from unlearn_jax.data.sources import DATASETS, Dataset, load
from unlearn_jax.data.splits import (Splits, add_label_noise, fingerprint, make_forget_set,
                                     make_splits, stratified_holdout)
from unlearn_jax.data.validation import (CONV_MODELS, check_dataset, check_model_input,
                                         check_sizes, class_indices)

__all__ = [
    "CONV_MODELS", "DATASETS", "Dataset", "Splits", "add_label_noise", "augment_batch",
    "check_dataset", "check_model_input", "check_sizes", "class_indices", "fingerprint", "load",
    "make_forget_set", "make_splits", "stratified_holdout",
]
