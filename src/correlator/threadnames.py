"""Operating-system names for the daemon's threads, so ``top -H`` and ``ps -L`` tell them apart.

Python names its threads for itself only: to the operating system every
thread of the daemon is ``python``, so when one of them eats a core nothing
says whether it is the correlation loop, the sealing of the event log or a
sink. On Linux a thread may rename itself (its ``comm``, 15 bytes at most);
elsewhere, or where that is refused, the names stay Python's own.
"""

from __future__ import annotations

import contextlib
import sys
import threading

_COMM_BYTES = 15


def name_this_thread(name: str | None = None) -> None:
    """Give the calling OS thread ``name`` (by default its Python thread's name), cut to
    15 bytes."""
    if sys.platform != "linux":
        return
    text = (name or threading.current_thread().name).encode()[:_COMM_BYTES]
    with (
        contextlib.suppress(OSError),
        open(f"/proc/self/task/{threading.get_native_id()}/comm", "wb") as comm,
    ):
        comm.write(text)


class NamedThread(threading.Thread):
    """A ``threading.Thread`` that names its OS thread after itself when it starts."""

    def run(self) -> None:
        name_this_thread()
        super().run()
