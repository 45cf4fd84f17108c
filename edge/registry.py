"""Self-registering back-ends: a stage keeps one Registry and each back-end module registers
its class under a key (Frigate's detector plugins work the same way)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type[Any])


class Registry(Generic[T]):
    """Back-end classes of one stage by key; `kind` names the stage in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, key: str) -> Callable[[C], C]:
        """Class decorator: make the class selectable as `key` and set its `key` attribute."""

        def decorate(cls: C) -> C:
            existing = self._classes.get(key)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} backend {key!r} already registered by {existing!r}")
            cls.key = key
            self._classes[key] = cls
            return cls

        return decorate

    def __getitem__(self, key: str) -> type[T]:
        return self._classes[key]

    def __contains__(self, key: object) -> bool:
        return key in self._classes

    def keys(self) -> list[str]:
        """Registered keys, sorted."""
        return sorted(self._classes)
