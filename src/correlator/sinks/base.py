"""The sink plugin interface: what a ticket-system integration implements.

A sink author subclasses :class:`TicketSink` and registers it (built-in in
``correlator.sinks.registry``, third-party through the ``correlator.sinks``
entry-point group). The delivery machinery (``outbox``, ``delivery``) owns
retries, ordering and durability; a sink only turns events into requests and
says, through :class:`DeliveryError`, whether a failure is worth retrying.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self

from correlator.errors import ConfigError, SinkError
from correlator.incident import IncidentEvent


class DeliveryError(SinkError):
    """A sink could not deliver part of a batch.

    ``delivered`` events at the head of the batch went through; the next one
    failed. ``retryable`` is false for a rejection that will never succeed
    (an HTTP 4xx other than 408/429): that event is dead-lettered with
    ``response`` and delivery moves on. ``retry_after`` (seconds) is the
    receiver's ``Retry-After``; ``reason`` is a short metrics label
    (``timeout``, ``connect``, ``http_5xx``, ``http_429``, ``http_4xx``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: str,
        retry_after: float | None = None,
        status: int | None = None,
        response: str | None = None,
        delivered: int = 0,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.response = response
        self.delivered = delivered


def deliver_each(events: Sequence[IncidentEvent], send: Callable[[IncidentEvent], None]) -> None:
    """Call ``send`` for each event in order; a ``DeliveryError`` notes how many went through.

    The helper for sinks whose target takes one event per request.
    """
    for done, event in enumerate(events):
        try:
            send(event)
        except DeliveryError as exc:
            exc.delivered = done
            raise


class SinkState(Protocol):
    """A small durable key-value store a sink may keep remote ids in (e.g. ticket sys_ids)."""

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        ...

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (durably, when the store is the outbox's)."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        ...


class MemoryState:
    """A :class:`SinkState` in a dict: the default until the dispatcher binds a durable one."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        return self._values.get(key)

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        self._values[key] = value

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._values.pop(key, None)


class TicketSink(ABC):
    """Receives incident events and hands them to a ticket system.

    Lifecycle, as the dispatcher drives it: ``from_config`` builds the sink
    (validation only, no I/O, raising ``ConfigError``); ``bind_state`` is
    called once before the sink's delivery thread starts. On that one thread,
    ``healthcheck`` runs before traffic flows (and again while the sink is
    unhealthy and idle), then ``write_batch`` receives events in emission
    order, each at least once: a batch that failed is offered again from its
    first undelivered event. ``close`` is called once, on the same thread,
    after its last ``write_batch`` when the dispatcher stops cleanly (by
    ``stop`` itself if the thread never started); it is not called after a
    crash, so a sink must not hold events only in memory between batches.
    """

    name: str = ""
    #: The most events one ``write_batch`` is offered unless the config says otherwise.
    #: A sink that makes one request per event sets 1: the cursor then follows every
    #: delivered event, so a crash redelivers at most the one in flight.
    batch_size: int = 100

    @classmethod
    def from_config(cls, name: str, options: Mapping[str, Any]) -> Self:
        """Validate ``options`` and build the sink; raises ``ConfigError`` naming sink and key.

        The default accepts no options; sinks with options override it.
        """
        SinkOptions(name, cls.__name__, options).done()
        sink = cls()
        sink.name = name
        return sink

    def bind_state(self, state: SinkState) -> None:  # noqa: B027 - optional hook
        """Receive the durable key-value store for this sink; ignored by default."""

    def healthcheck(self) -> None:  # noqa: B027 - optional hook, healthy by default
        """Raise ``SinkError`` when the target cannot take events now; does nothing by default."""

    @abstractmethod
    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Deliver ``events`` in order; raise ``DeliveryError`` (or ``SinkError``) on failure.

        On failure, set ``DeliveryError.delivered`` to the number of events at
        the head of the batch that did go through, so they are not resent.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; does nothing by default."""


class SinkOptions:
    """Typed reads of a sink's options, with errors that name the sink and the key.

    Call :meth:`done` last: it rejects keys nothing read, listing the known ones.
    """

    def __init__(self, name: str, kind: str, options: Mapping[str, Any]) -> None:
        if not isinstance(options, Mapping):
            msg = f"sink {name!r} ({kind}): options must be a mapping, got {type(options).__name__}"
            raise ConfigError(msg)
        self.name = name
        self.kind = kind
        self._options = options
        self._read: set[str] = set()

    def _fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"sink {self.name!r} ({self.kind}): option {key!r} {problem}")

    def _get(self, key: str) -> Any:
        self._read.add(key)
        return self._options.get(key)

    def optional_text(self, key: str) -> str | None:
        """A string option, or None when absent."""
        value = self._get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self._fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        """A string option; required when there is no ``default``."""
        value = self.optional_text(key)
        if value is not None:
            return value
        if default is None:
            raise self._fail(key, "is required")
        return default

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        """A string option restricted to ``choices``."""
        value = self.text(key, default)
        if value not in choices:
            raise self._fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        """A finite number option, at least ``minimum``."""
        value = self._get(key)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._fail(key, f"must be a number, got {value!r}")
        if value < minimum:
            raise self._fail(key, f"must be at least {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        """An integer option, at least ``minimum``."""
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """A boolean option."""
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {value!r}")
        return value

    def text_map(self, key: str) -> dict[str, str]:
        """A mapping of strings to strings (e.g. extra HTTP headers); empty when absent."""
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self._fail(key, f"must map strings to strings, got {value!r}")
        return dict(value)

    def done(self) -> None:
        """Raise ``ConfigError`` for any option no read asked for."""
        unknown = sorted(str(k) for k in self._options if k not in self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "none"
            msg = (
                f"sink {self.name!r} ({self.kind}): unknown option {unknown[0]!r}"
                f" (known options: {known})"
            )
            raise ConfigError(msg)
