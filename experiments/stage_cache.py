"""The resumable cache of a stage's array outputs: `<stem>.npz` plus `<stem>.json` with its key.

A stage's key is everything its outputs depend on (the config fields it reads, the data's content
fingerprint, the members, the stage's code version). A cached result is used only under an equal
key; under another key it is recomputed and replaced, so a rerun with other settings never mixes
old and new numbers. The JSON is written last: a run killed mid-write leaves no valid entry, and a
damaged entry is reported with its path and recomputed.
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from typing import Callable

import numpy as np

Arrays = dict[str, np.ndarray]


def canonical(key: dict) -> dict:
  """The key as it reads back from JSON (tuples become lists, numbers stay exact)."""
  return json.loads(json.dumps(key, sort_keys=True, default=str))


def load(stem: str, key: dict) -> Arrays | None:
  """The cached arrays if `stem` holds a complete entry made under `key`, else None."""
  meta_path, data_path = stem + ".json", stem + ".npz"
  if not os.path.exists(meta_path):
    return None
  try:
    with open(meta_path) as f:
      saved_key = json.load(f)
    if saved_key != canonical(key):
      return None
    with np.load(data_path, allow_pickle=False) as data:
      return {name: data[name] for name in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:   # truncated or deleted by hand
    logging.warning("cache entry %s is damaged (%s: %s); recomputing it.", stem,
                    type(e).__name__, e)
    return None


def save(stem: str, key: dict, arrays: Arrays) -> None:
  os.makedirs(os.path.dirname(stem), exist_ok=True)
  tmp = stem + ".tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, stem + ".npz")
  with open(stem + ".json.tmp", "w") as f:
    json.dump(canonical(key), f, sort_keys=True)
  os.replace(stem + ".json.tmp", stem + ".json")


def load_or_compute(stem: str, key: dict, compute: Callable[[], Arrays], write: bool = True
                    ) -> Arrays:
  """Cached arrays under `key`, or `compute()` (saved when `write`: process 0 of a run)."""
  cached = load(stem, key)
  if cached is not None:
    return cached
  arrays = {name: np.asarray(v) for name, v in compute().items()}
  if write:
    save(stem, key, arrays)
  return arrays
