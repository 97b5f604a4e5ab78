"""A small name -> object registry shared by algorithms, benchmarks and rollout engines.

Semantics follow lm-evaluation-harness's registry: registering a name twice is an error, an
unknown name raises a :class:`HarnessError` that lists close matches and every available name,
and ``names()`` keeps registration order (so ``--bench all`` expands deterministically).
A ``"module:attr"`` string resolves an out-of-tree object without registering it first.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, TypeVar

from common.errors import HarnessError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name``; without ``obj`` this is a decorator."""
        if obj is None:
            return lambda o: self.register(name, o)  # type: ignore[return-value]
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        if ":" in name:  # out-of-tree plugin, "package.module:attr"
            module, _, attr = name.partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as err:
                raise HarnessError(f"cannot load {self.kind} {name!r}: {err}") from None
        close = difflib.get_close_matches(name, self._items, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise HarnessError(
            f"unknown {self.kind} {name!r}{hint}; available: {', '.join(self._items)}"
        )

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
