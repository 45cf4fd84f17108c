"""Self-registering back-ends discovered as plugins: a stage keeps one Registry, and every module
of its `plugins` package registers its class under a key when imported (Frigate's
`detectors/plugins/` work the same way).

The plugins are imported on first use, not when the stage is imported, so that code needing only
a stage's data types (a Detection, a Classification) never loads a model runtime.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=type[Any])


class Registry(Generic[T]):
    """Back-end classes of one stage by key; `kind` names the stage in error messages and
    `plugins` is the package whose modules register them."""

    def __init__(self, kind: str, plugins: str) -> None:
        self.kind = kind
        self.plugins = plugins
        self._classes: dict[str, type[T]] = {}
        self._loaded = False
        self._lock = threading.RLock()  # a plugin's import may ask the registry again

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

    def load(self) -> None:
        """Import every module of the plugins package once (they register themselves)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            package = importlib.import_module(self.plugins)
            for module in pkgutil.iter_modules(package.__path__, f"{self.plugins}."):
                importlib.import_module(module.name)
            self._loaded = True
            log.debug("%s backends: %s", self.kind, ", ".join(sorted(self._classes)))

    def __getitem__(self, key: str) -> type[T]:
        self.load()
        try:
            return self._classes[key]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} backend {key!r}; available: {self.keys()}"
            ) from None

    def __contains__(self, key: object) -> bool:
        self.load()
        return key in self._classes

    def keys(self) -> list[str]:
        """Registered keys, sorted."""
        self.load()
        return sorted(self._classes)

    def settings(
        self, data: Mapping[str, Any] | BaseModel | None, default: str, fields: Mapping[str, Any]
    ) -> Any:
        """Settings validated by the class (`settings_type`) of the back-end that `backend` in
        `data` (else `default`) names; `fields` override `data`. Settings already of the right
        class are returned as they are."""
        if isinstance(data, BaseModel):
            backend = getattr(data, "backend", default)
            if not fields and type(data) is self.settings_type(backend):
                return data
            values = data.model_dump(exclude_unset=True) | {"backend": backend}
        else:
            values = dict(data or {})
        values |= fields
        backend = values.get("backend", default)
        if not isinstance(backend, str) or backend not in self:
            raise ValueError(f"unknown {self.kind} backend {backend!r}; available: {self.keys()}")
        return self.settings_type(backend).model_validate(values)

    def validator(self, default: str) -> BeforeValidator:
        """For a config field: a section is parsed by its back-end's own settings class."""

        def parse(value: Any) -> Any:
            if value is None or isinstance(value, Mapping | BaseModel):
                return self.settings(value, default, {})
            return value  # not a section: pydantic reports the type error

        return BeforeValidator(parse)

    def settings_type(self, key: str) -> type[BaseModel]:
        """The settings class of a back-end (its `settings_type` attribute)."""
        settings_type: type[BaseModel] = getattr(self[key], "settings_type")  # noqa: B009
        return settings_type
