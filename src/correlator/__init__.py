"""correlator: high-throughput event correlation for alert storms.

Alerts come in as columns (``AlertBatch``), pass first-level filtering and
topology-aware correlation (``Correlator``), and leave as incident events
(``IncidentEvent``) for ticket sinks. Everything not named in ``__all__`` is
an implementation detail.
"""

from __future__ import annotations

from correlator.batch import AlertBatch, Normalizer
from correlator.correlate.engine import CorrelationSettings, Correlator, Outcome
from correlator.decode import (
    Decoded,
    decode_arrow_stream,
    decode_json,
    decode_json_lines,
    read_recording,
)
from correlator.errors import (
    ConfigError,
    CorrelatorError,
    RuleError,
    SinkError,
    SourceError,
    TopologyError,
)
from correlator.fingerprint import fingerprint, format_fingerprint
from correlator.incident import IncidentEvent, RootCause
from correlator.rejects import Reject
from correlator.replay import ReplaySummary, replay
from correlator.sinks import JsonlSink, TicketSink
from correlator.topology import Topology, load_topology
from correlator.vocab import Vocabulary

__version__ = "0.1.0"

__all__ = [
    "AlertBatch",
    "ConfigError",
    "CorrelationSettings",
    "Correlator",
    "CorrelatorError",
    "Decoded",
    "IncidentEvent",
    "JsonlSink",
    "Normalizer",
    "Outcome",
    "Reject",
    "ReplaySummary",
    "RootCause",
    "RuleError",
    "SinkError",
    "SourceError",
    "TicketSink",
    "Topology",
    "TopologyError",
    "Vocabulary",
    "__version__",
    "decode_arrow_stream",
    "decode_json",
    "decode_json_lines",
    "fingerprint",
    "format_fingerprint",
    "load_topology",
    "read_recording",
    "replay",
]
