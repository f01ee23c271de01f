"""A named registry: the one register/get/names helper behind methods, terms, objectives, models
and the sweep's evaluators.

    MODELS = Registry("model")
    MODELS.register("mlp", build_mlp)
    MODELS.get("mpl")   # ValueError: Unknown model 'mpl'; allowed: ['mlp'].
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """Entries by name; unknown names fail with the list of allowed ones."""

  def __init__(self, kind: str, entries: dict[str, T] | None = None):
    self.kind = kind
    self._entries: dict[str, T] = dict(entries or {})

  def register(self, name: str, entry: T, overwrite: bool = False) -> T:
    if name in self._entries and not overwrite:
      raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to "
                       "replace it.")
    self._entries[name] = entry
    return entry

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise ValueError(f"Unknown {self.kind} {name!r}; allowed: {self.names()}.")
    return self._entries[name]

  def check(self, names, where: str) -> None:
    """Raises naming `where` (e.g. 'config.eval.evaluators') if any of `names` is unknown."""
    unknown = sorted(set(names) - set(self._entries))
    if unknown:
      raise ValueError(f"{where} names unknown {self.kind}(s) {unknown}; allowed: "
                       f"{self.names()}.")

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __getitem__(self, name: str) -> T:
    return self.get(name)

  def __iter__(self) -> Iterator[str]:
    return iter(self._entries)

  def __len__(self) -> int:
    return len(self._entries)

  def items(self):
    return self._entries.items()

  def values(self):
    return self._entries.values()
