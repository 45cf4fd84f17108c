"""SMS back-ends for duty-officer alerts: one small interface and a registry by key."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # central.config holds the alerting policy models: no import cycle at run time
    from central.config import CentralConfig


class SmsError(RuntimeError):
    """An SMS could not be handed to the carrier or gateway."""


@runtime_checkable
class SmsBackend(Protocol):
    """Sends one text message to one phone number, raising SmsError on failure."""

    def send(self, phone: str, text: str) -> None:
        """Send `text` to `phone`."""


BackendFactory = Callable[["CentralConfig"], SmsBackend]
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(key: str) -> Callable[[BackendFactory], BackendFactory]:
    """Class or function decorator that makes a back-end selectable by `alerts.sms_backend`."""

    def _register(factory: BackendFactory) -> BackendFactory:
        _REGISTRY[key] = factory
        return factory

    return _register


def backend_keys() -> list[str]:
    """Keys of the registered back-ends."""
    _load_builtin()
    return sorted(_REGISTRY)


def make_backend(config: CentralConfig) -> SmsBackend:
    """Build the back-end named in the config."""
    _load_builtin()
    key = config.alerts.sms_backend
    try:
        factory = _REGISTRY[key]
    except KeyError:
        raise SmsError(
            f"unknown SMS backend {key!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None
    return factory(config)


def _load_builtin() -> None:
    from central.alerts import file  # noqa: F401 - registers itself


__all__ = ["SmsBackend", "SmsError", "backend_keys", "make_backend", "register_backend"]
