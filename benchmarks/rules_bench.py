"""First-level rule evaluation: throughput with 200 and 2,000 rules, and compile time.

    PYTHONPATH=src python benchmarks/rules_bench.py [--alerts 1000000] [--repeat 3]

The batch is built as columns (no JSON): six labels per alert, alertnames
drawn from 500 names, 100,000 distinct label sets (so flap and threshold keep
~100,000 keys), 10% resolved, event time over one hour. The 200-rule set mixes
every first-level stage (classify, drop, maintenance with absolute and weekly
windows, flap, threshold keyed by fingerprint or by labels) over equality and
regex matchers on alertname, severity, instance and job; its rules match
about 40% of the alerts. The 2,000-rule set is the same 200 rules plus 1,800
of the same shapes whose values the stream never carries, so both sets make
the same decisions and the ratio is the cost of ten times more rules, not of
more matches.

A run with no rules at all gives the floor of the machinery every batch
pays (sorting check, label extraction, output arrays). Throughput is the
steady state: the batch is processed once to warm up
(numba loads its cache, the matchers learn every value, the state tables
grow), then again ``--repeat`` times with event times moved on; the best run
counts. ``FirstLevel.process`` is timed whole: sorting check, label
extraction, the kernel and the output arrays. Compile time is measured in a
fresh interpreter (warm numba cache): load the 200-rule file, build the
``FirstLevel`` and decide one small batch, which loads every kernel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from correlator.batch import AlertBatch
from correlator.rules.first_level import FirstLevel
from correlator.rules.load import load_rules
from correlator.vocab import Vocabulary

NAMES = 500
IDENTITIES = 100_000
HOUR_NS = 3600 * 10**9
START_NS = 1_795_000_000 * 10**9


def rule_file(n_rules: int) -> str:
    """A rule file with ``n_rules`` rules; rules past the 200th never match the stream."""
    lines = [
        "version: 1",
        "ci_label: instance",
        "classify: []",
        "drop: []",
        "maintenance: []",
        "flap: []",
        "threshold: []",
    ]
    stages: dict[str, list[str]] = {s: [] for s in ("classify", "drop", "maintenance", "flap")}
    stages["threshold"] = []
    for k in range(n_rules):
        live = k < 200
        name = f"A{k * 2 if live else 10_000 + k:05d}"
        job = f"job{k % 7}" if live else f"nojob{k}"
        kind = k % 20
        if kind == 0:
            match = f'job="{job}", severity="critical", env="staging"'
        elif kind == 1:
            match = f'alertname=~"{name[:-1]}[0-4]"'
        elif kind == 2:
            match = [f'alertname="{name}", severity!="info"', f'alertname="{name}", job="{job}"']
        else:
            match = f'alertname="{name}"'
        text = repr(match) if isinstance(match, str) else "[" + ", ".join(map(repr, match)) + "]"
        if kind == 3:
            stages["classify"].append(f"  - {{match: {text}, significance: exception}}")
        elif kind < 11:
            stages["drop"].append(f"  - {{name: d{k}, match: {text}}}")
        elif kind < 13:
            instance = 'instance=~"db-.*", ' if kind == 11 else ""
            window = (
                "weekly: {days: [sat, sun], from: '22:00', until: '04:00', timezone: Europe/Berlin}"
                if kind == 12
                else "from: 2026-11-17T09:00:00Z, until: 2026-11-17T09:30:00Z"
            )
            stages["maintenance"].append(
                f"  - {{name: m{k}, match: {text[:1]}{instance}{text[1:]}, {window}}}"
            )
        elif kind < 15:
            stages["flap"].append(f"  - {{name: f{k}, match: {text}, changes: 3, within: 10m}}")
        else:
            key = ", key: [instance, job]" if kind == 19 else ""
            stages["threshold"].append(
                f"  - {{name: t{k}, match: {text}, count: 3, within: 5m{key}}}"
            )
    out = lines[:2]
    for stage, rules in stages.items():
        out.append(f"{stage}:" if rules else f"{stage}: []")
        out.extend(rules)
    return "\n".join(out) + "\n"


def alert_batch(n: int, vocab: Vocabulary, seed: int = 7) -> AlertBatch:
    """``n`` alerts as columns: 6 labels each, from ``IDENTITIES`` distinct label sets."""
    rng = np.random.default_rng(seed)
    keys = np.array(
        [vocab.intern(k) for k in ("alertname", "severity", "instance", "job", "env", "team")],
        dtype=np.int32,
    )
    names = vocab.intern_many(f"A{k:05d}" for k in range(NAMES))
    severities = vocab.intern_many(("critical", "warning", "info", "error"))
    instances = vocab.intern_many(
        (f"db-{k}:9100" if k % 10 == 0 else f"host-{k}:9100") for k in range(20_000)
    )
    jobs = vocab.intern_many(f"job{k}" for k in range(7))
    envs = vocab.intern_many(("prod", "staging"))
    teams = vocab.intern_many(f"team-{k}" for k in range(30))
    ident = np.stack(
        [
            names[rng.integers(0, NAMES, IDENTITIES)],
            severities[rng.integers(0, 4, IDENTITIES)],
            instances[rng.integers(0, len(instances), IDENTITIES)],
            jobs[rng.integers(0, 7, IDENTITIES)],
            envs[rng.integers(0, 2, IDENTITIES)],
            teams[rng.integers(0, 30, IDENTITIES)],
        ],
        axis=1,
    ).astype(np.int32)
    fingerprints = rng.integers(1, 2**63, IDENTITIES, dtype=np.int64).astype(np.uint64)
    pick = rng.integers(0, IDENTITIES, n)
    codes = np.zeros(len(vocab), dtype=np.int8)
    codes[severities] = (4, 2, 1, 3)  # the normalizer's severity codes
    return AlertBatch(
        ts=START_NS + np.sort(rng.integers(0, HOUR_NS, n)),
        fingerprint=fingerprints[pick],
        ci=np.full(n, -1, dtype=np.int32),
        ci_label=ident[pick, 2],
        alertname=ident[pick, 0],
        severity=codes[ident[pick, 1]],
        status=(rng.random(n) < 0.1).astype(np.int8),
        label_ptr=np.arange(0, 6 * n + 1, 6, dtype=np.int64),
        label_key=np.tile(keys, n),
        label_value=ident[pick].reshape(-1),
        row=np.arange(n, dtype=np.int64),
    )


def throughput(n_rules: int, n_alerts: int, repeat: int, folder: Path) -> tuple[float, float]:
    """(alerts per second in the steady state, seconds of the first, cold batch)."""
    path = folder / f"rules-{n_rules}.yaml"
    path.write_text(rule_file(n_rules) if n_rules else "version: 1\n")
    vocab = Vocabulary()
    batch = alert_batch(n_alerts, vocab)
    first = FirstLevel(load_rules(path), vocab)
    started = time.perf_counter()
    first.process(batch)
    cold = time.perf_counter() - started
    best = float("inf")
    for k in range(1, repeat + 1):
        moved = replace(batch, ts=batch.ts + k * HOUR_NS)
        started = time.perf_counter()
        first.process(moved)
        best = min(best, time.perf_counter() - started)
    return n_alerts / best, cold


_COMPILE = """
import sys, time
started = time.perf_counter()
from correlator.rules.first_level import FirstLevel
from correlator.rules.load import load_rules
from correlator.vocab import Vocabulary
sys.path.insert(0, {bench!r})
from rules_bench import alert_batch
imported = time.perf_counter()
vocab = Vocabulary()
small = alert_batch(1000, vocab)
begin = time.perf_counter()
FirstLevel(load_rules({path!r}), vocab).process(small)
print(imported - started, time.perf_counter() - begin)
"""


def compile_seconds(folder: Path) -> tuple[float, float]:
    """(import seconds, load + compile + first small batch seconds) in a fresh interpreter."""
    path = folder / "rules-200.yaml"
    code = _COMPILE.format(bench=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    imported, compiled = map(float, out.stdout.split())
    return imported, compiled


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores} (os.cpu_count() = {os.cpu_count()}); kernels use one")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rates = {n: throughput(n, args.alerts, args.repeat, folder) for n in (0, 200, 2000)}
        imported, compiled = compile_seconds(folder)
    print(f"batch: {args.alerts:,} alerts, best of {args.repeat} warm runs")
    for n, (rate, cold) in rates.items():
        label = "no rules (floor)" if n == 0 else f"{n} rules"
        print(f"  {label:>16}: {rate:>12,.0f} alerts/s  (first, cold batch {cold:.2f} s)")
    print(f"  2000 vs 200 rules: {rates[200][0] / rates[2000][0]:.2f}x the time")
    print(f"compile 200 rules (warm numba cache): {compiled:.3f} s (imports {imported:.2f} s)")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
