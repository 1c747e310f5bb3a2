"""The exception tree of correlator.

Every error the package raises on purpose derives from ``CorrelatorError``;
errors of the libraries underneath (yaml, pyarrow, networkx, zmq) are
converted to one of these at the boundary with ``raise ... from exc``::

    CorrelatorError
    ├── ConfigError      a configuration file or option is wrong
    ├── RuleError        a rule file cannot be parsed or compiled
    ├── TopologyError    a CMDB export cannot be loaded or compiled
    ├── SourceError      an input file or endpoint cannot be read
    └── SinkError        an incident sink cannot be built or written

Bad *events* are not exceptions: decoders return them as rejected rows.
"""

from __future__ import annotations


class CorrelatorError(Exception):
    """Root of every error correlator raises on purpose."""


class ConfigError(CorrelatorError):
    """A configuration file or option is invalid."""


class RuleError(CorrelatorError):
    """A rule file cannot be parsed or compiled."""


class TopologyError(CorrelatorError):
    """A CMDB export cannot be loaded, validated or compiled."""


class SourceError(CorrelatorError):
    """An input (file, socket, HTTP body as a whole) cannot be read."""


class SinkError(CorrelatorError):
    """An incident sink cannot be built or cannot accept events."""
