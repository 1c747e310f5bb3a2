"""The benchmark suite: ``correlator bench`` run from a source checkout.

A thin wrapper; the code lives in ``correlator.bench``. Takes the same flags:

    python benchmarks/suite.py --suite quick                      # under 2 minutes
    python benchmarks/suite.py --suite full --peer alertmanager --out benchmarks/results
    python benchmarks/suite.py --recording state/events --topology cmdb.json \\
        --compare-rules rules/old.yaml rules/new.yaml

It writes ``report.md``, ``results.json`` and PNG charts (with the ``bench``
extra, matplotlib) into ``--out``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "src" / "correlator").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from correlator.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
