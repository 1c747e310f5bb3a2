"""The canonical Arrow schema of alerts on the wire and at rest.

Arrow IPC producers, Parquet recordings and the daemon's event log all use
these Alertmanager field names, so one normalizer serves every source and a
recording can be replayed by any of them. Only ``labels`` is required;
``receivedAt`` is the event time (stamped by the daemon on arrival) and
``status`` is ``firing`` or ``resolved``.
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("ns", tz="UTC")
LABELS = pa.map_(pa.string(), pa.string())

ALERT_SCHEMA = pa.schema(
    [
        pa.field("labels", LABELS, nullable=False),
        pa.field("annotations", LABELS),
        pa.field("startsAt", TIMESTAMP),
        pa.field("endsAt", TIMESTAMP),
        pa.field("generatorURL", pa.string()),
        pa.field("receivedAt", TIMESTAMP),
        pa.field("status", pa.string()),
    ]
)

# The canonical columns but labels, for tables whose labels travel as
# vocabulary ids beside them (the daemon's batches, the event log's appends).
UNLABELLED = ALERT_SCHEMA.remove(ALERT_SCHEMA.get_field_index("labels"))

# The Parquet leaf columns of the labels map, read as dictionaries so that no
# string is built per row.
LABEL_LEAVES = ["labels.key_value.key", "labels.key_value.value"]

FIRING = 0
RESOLVED = 1
STATUS_NAMES = ("firing", "resolved")
