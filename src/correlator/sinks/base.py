"""The sink plugin interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from correlator.incident import IncidentEvent


class TicketSink(ABC):
    """Receives incident events in the order they were emitted.

    ``write_batch`` is called with the events of one correlated batch; it
    returns once they are durably handed over, or raises ``SinkError``.
    ``close`` is called once after the last ``write_batch`` when the engine
    shuts down cleanly; it is not called after a crash, so a sink must not
    hold events only in memory between batches.
    """

    @abstractmethod
    def write_batch(self, events: Sequence[IncidentEvent]) -> None:
        """Deliver ``events`` (in order)."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; does nothing by default."""
