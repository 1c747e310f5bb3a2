"""What the figures were measured on: CPU, cores, memory, load and library versions."""

from __future__ import annotations

import os
import platform
import resource
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("correlator", "numpy", "numba", "pyzmq", "pyarrow", "matplotlib")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (the platform's name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    """Total memory in GiB, from ``/proc/meminfo`` (0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def versions() -> dict[str, str]:
    """Python's version and the installed versions of the libraries the figures depend on."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    if found["correlator"] == "not installed":
        import correlator

        found["correlator"] = f"{correlator.__version__} (source tree)"
    return found


def load_average() -> float:
    """The one-minute load average: how busy the shared machine was."""
    return os.getloadavg()[0]


def describe() -> dict[str, Any]:
    """The machine and software, as ``results.json`` records them."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions(),
    }


def peak_rss_mib(pid: int | None = None) -> float:
    """Peak resident memory of ``pid`` (``VmHWM``), or of this process (``ru_maxrss``), in MiB."""
    if pid is not None:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
