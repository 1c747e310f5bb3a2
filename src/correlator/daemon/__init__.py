"""The long-running daemon: ingestion, the correlation loop, HTTP API, state and event log."""

from __future__ import annotations

from correlator.daemon.config import DaemonConfig, load_config
from correlator.daemon.service import Daemon

__all__ = ["Daemon", "DaemonConfig", "load_config"]
