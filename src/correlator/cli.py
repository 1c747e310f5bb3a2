"""The ``correlator`` command line: one entry point, a subcommand per job.

Every flag has a default; the ones users set most can also come from a
``CORRELATOR_*`` environment variable, shown in ``--help``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from correlator.batch import DEFAULT_CI_LABELS
from correlator.correlate.engine import CorrelationSettings
from correlator.errors import CorrelatorError
from correlator.rules import load_rules
from correlator.sinks.jsonl import JsonlSink
from correlator.timefmt import parse_duration
from correlator.topology import Topology, check_report, explain_report, load_topology


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"CORRELATOR_{name}", default)


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_settings(parser: argparse.ArgumentParser) -> None:
    defaults = CorrelationSettings()
    group = parser.add_argument_group("correlation (durations like 30s, 5m, 1h)")
    group.add_argument(
        "--window",
        type=_duration,
        default=defaults.window,
        help="how long an alerting CI explains the alerts below it (default 5m)",
    )
    group.add_argument(
        "--dedup",
        type=_duration,
        default=defaults.dedup_window,
        help="resends of one alert within this window are duplicates (default 5m)",
    )
    group.add_argument(
        "--settle",
        type=_duration,
        default=defaults.settle,
        help="hold a new incident this long so a late root can absorb it (default 10s)",
    )
    group.add_argument(
        "--update-interval",
        type=_duration,
        default=defaults.update_interval,
        help="at most one update per incident per interval (default 1m)",
    )
    group.add_argument(
        "--resolve-timeout",
        type=_duration,
        default=defaults.resolve_timeout,
        help="an alert not re-sent for this long is resolved (default 5m)",
    )
    group.add_argument(
        "--reopen-window",
        type=_duration,
        default=defaults.reopen_window,
        help="an incident firing again this soon after resolving reopens (default 5m)",
    )
    group.add_argument(
        "--infer-min",
        type=int,
        default=defaults.infer_min_dependents,
        metavar="N",
        help="infer a silent root when at least N of its dependents "
        "alert (0 turns inference off; default 5)",
    )
    group.add_argument(
        "--infer-ratio",
        type=float,
        default=defaults.infer_ratio,
        help="... and at least this share of them (default 0.8)",
    )
    group.add_argument(
        "--keep-informational",
        action="store_true",
        help="correlate informational alerts instead of dropping them",
    )
    group.add_argument(
        "--ci-label",
        action="append",
        dest="ci_labels",
        metavar="LABEL",
        help="label naming the CI, tried in order (repeatable; default: "
        + ", ".join(DEFAULT_CI_LABELS)
        + ")",
    )


def _settings(args: argparse.Namespace) -> CorrelationSettings:
    return CorrelationSettings(
        window=args.window,
        dedup_window=args.dedup,
        update_interval=args.update_interval,
        settle=args.settle,
        resolve_timeout=args.resolve_timeout,
        reopen_window=args.reopen_window,
        infer_min_dependents=args.infer_min,
        infer_ratio=args.infer_ratio,
        drop_informational=not args.keep_informational,
    )


def _topology(path: str | None) -> Topology | None:
    return load_topology(path) if path else None


def _cmd_replay(args: argparse.Namespace) -> int:
    from correlator.replay import replay

    sink = JsonlSink(args.out, append=False)
    try:
        result = replay(
            args.recording,
            topology=_topology(args.topology),
            rules=load_rules(args.rules) if args.rules else None,
            sinks=[sink],
            settings=_settings(args),
            ci_labels=args.ci_labels or DEFAULT_CI_LABELS,
            assignments=args.assignments,
        )
    finally:
        sink.close()
    print(result.summary.render(), file=sys.stderr)
    for fingerprint in args.explain or ():
        print(result.explain(fingerprint), file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from correlator.demo import run_demo

    return run_demo(out=sys.stdout)


def _cmd_run(args: argparse.Namespace) -> int:
    import logging
    import signal
    from dataclasses import replace

    from correlator.daemon.config import load_config
    from correlator.daemon.service import run_daemon

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(args.config)
    overrides: dict[str, object] = {}
    if args.zmq_pull:
        overrides["zmq"] = replace(config.zmq, pull=tuple(args.zmq_pull))
    if args.http_listen is not None:
        overrides["http_listen"] = args.http_listen
    if args.state_dir:
        overrides["state_dir"] = args.state_dir
    if args.topology:
        overrides["topology"] = args.topology
    run_daemon(replace(config, **overrides), stop_signals=(signal.SIGTERM, signal.SIGINT))
    return 0


def _cmd_send(args: argparse.Namespace) -> int:
    import msgspec

    from correlator.client import Client

    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    stripped = data.lstrip()
    try:
        if stripped[:1] == b"[":
            alerts = msgspec.json.decode(data)
        else:
            alerts = [msgspec.json.decode(line) for line in data.splitlines() if line.strip()]
    except msgspec.DecodeError as exc:
        print(
            f"correlator send: {args.file}: not JSON lines or a JSON array: {exc}", file=sys.stderr
        )
        return 1
    with Client(args.to, batch_size=args.batch_size) as client:
        sent = client.send(alerts)
    print(f"sent {sent:,} alerts to {args.to}", file=sys.stderr)
    return 0


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from correlator.rules import check_paths

    text, ok = check_paths(args.paths)
    print(text)
    return 0 if ok else 1


def _cmd_rules_test(args: argparse.Namespace) -> int:
    from correlator.rules import test_rules

    text, ok = test_rules(args.rules, args.alerts, args.expect, args.topology)
    print(text)
    return 0 if ok else 1


def _cmd_plugins(args: argparse.Namespace) -> int:
    from correlator.sinks.plugins import plugins_report

    print(plugins_report())
    return 0


def _cmd_tickets_list(args: argparse.Namespace) -> int:
    from correlator.sinks.tickets import tickets_list_report

    print(tickets_list_report(args.db, state=args.state, limit=args.limit))
    return 0


def _cmd_tickets_show(args: argparse.Namespace) -> int:
    from correlator.sinks.tickets import ticket_show_report

    print(ticket_show_report(args.db, args.id))
    return 0


def _cmd_topology_check(args: argparse.Namespace) -> int:
    text, ok = check_report(args.file, relations=args.relations)
    print(text)
    return 0 if ok else 1


def _cmd_topology_explain(args: argparse.Namespace) -> int:
    print(explain_report(load_topology(args.file, relations=args.relations), args.ci))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from correlator.bench.suite import Options, run_bench

    options = Options(
        out=Path(args.out),
        suite=args.suite,
        runs=args.runs,
        max_seconds=args.max_seconds,
        peer=args.peer,
        recording=Path(args.recording) if args.recording else None,
        topology=Path(args.topology) if args.topology else None,
        rules=Path(args.rules) if args.rules else None,
        compare_rules=(Path(args.compare_rules[0]), Path(args.compare_rules[1]))
        if args.compare_rules
        else None,
        cache=Path(args.cache) if args.cache else None,
        seed=args.seed,
    )
    run_bench(options)
    print(f"correlator bench: report in {options.out / 'report.md'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``correlator`` command."""
    parser = argparse.ArgumentParser(
        prog="correlator",
        description="Turns alert storms into a few topology-aware incidents.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="replay the bundled storm and show its incidents")
    demo.set_defaults(func=_cmd_demo)

    rep = commands.add_parser("replay", help="replay a recorded storm on event time")
    rep.add_argument(
        "recording", help="JSON lines, JSON array, Parquet, Arrow, or an event-log folder"
    )
    rep.add_argument(
        "--topology",
        default=_env("TOPOLOGY", None),
        help="CMDB export (JSON, CSV pair, GraphML) [env CORRELATOR_TOPOLOGY]",
    )
    rep.add_argument(
        "--out", default="-", help="where incident events go as JSON lines (default: stdout)"
    )
    rep.add_argument(
        "--assignments",
        metavar="FILE",
        help="also write each input alert's incident or drop reason here",
    )
    rep.add_argument(
        "--rules",
        default=_env("RULES", None),
        help="rule file or folder (default: significance by severity) [env CORRELATOR_RULES]",
    )
    rep.add_argument(
        "--explain",
        action="append",
        metavar="FINGERPRINT",
        help="say why each alert of this fingerprint went where it went (repeatable)",
    )
    _add_settings(rep)
    rep.set_defaults(func=_cmd_replay)

    run = commands.add_parser("run", help="run the daemon (ZeroMQ, HTTP API, sinks)")
    run.add_argument(
        "--config",
        default=_env("CONFIG", None),
        help="YAML config; built-in defaults without it [env CORRELATOR_CONFIG]",
    )
    run.add_argument(
        "--zmq-pull",
        action="append",
        metavar="ENDPOINT",
        default=[e for e in [_env("ZMQ_PULL", None)] if e],
        help="bind a PULL socket here (repeatable; default tcp://127.0.0.1:5555) "
        "[env CORRELATOR_ZMQ_PULL]",
    )
    run.add_argument(
        "--http-listen",
        default=_env("HTTP_LISTEN", None),
        metavar="HOST:PORT",
        help="HTTP API, health and /metrics (default 127.0.0.1:9095) [env CORRELATOR_HTTP_LISTEN]",
    )
    run.add_argument(
        "--state-dir",
        default=_env("STATE_DIR", None),
        help="snapshots, outbox and event log (default ./state) [env CORRELATOR_STATE_DIR]",
    )
    run.add_argument(
        "--topology", default=_env("TOPOLOGY", None), help="CMDB export [env CORRELATOR_TOPOLOGY]"
    )
    run.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default info) [env CORRELATOR_LOG_LEVEL]",
    )
    run.set_defaults(func=_cmd_run)

    send = commands.add_parser("send", help="send alerts (JSON lines or a JSON array) to a daemon")
    send.add_argument("file", nargs="?", default="-", help="file to send, - for stdin (default)")
    send.add_argument(
        "--to",
        default=_env("SEND_TO", "tcp://127.0.0.1:5555"),
        help="the daemon's ZeroMQ PULL endpoint (default tcp://127.0.0.1:5555) "
        "[env CORRELATOR_SEND_TO]",
    )
    send.add_argument(
        "--batch-size", type=int, default=1000, help="alerts per message (default 1000)"
    )
    send.set_defaults(func=_cmd_send)

    rules = commands.add_parser("rules", help="check rule files, or test them on alerts")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check_rules = rule_commands.add_parser("check", help="validate rule files (file:line:col)")
    check_rules.add_argument("paths", nargs="+", metavar="PATH", help="rule files or folders")
    check_rules.set_defaults(func=_cmd_rules_check)
    test = rule_commands.add_parser("test", help="each alert's fate under a rule set")
    test.add_argument("--rules", required=True, help="rule file or folder")
    test.add_argument("--alerts", required=True, help="alerts as JSON lines or a JSON array")
    test.add_argument("--expect", help="expected fates; exit 1 on any difference")
    test.add_argument(
        "--topology",
        default=_env("TOPOLOGY", None),
        help="CMDB export for enrich and ci_type [env CORRELATOR_TOPOLOGY]",
    )
    test.set_defaults(func=_cmd_rules_test)

    plugins = commands.add_parser("plugins", help="list the sink types found, with their package")
    plugins.set_defaults(func=_cmd_plugins)

    tickets = commands.add_parser("tickets", help="browse the embedded SQLite ticket store")
    ticket_commands = tickets.add_subparsers(
        dest="tickets_command", required=True, metavar="ACTION"
    )
    for action, func, text in (
        ("list", _cmd_tickets_list, "recently updated tickets"),
        ("show", _cmd_tickets_show, "one ticket with its history"),
    ):
        sub = ticket_commands.add_parser(action, help=text)
        sub.add_argument(
            "--db",
            default=_env("TICKETS_DB", "tickets.db"),
            help="the sqlite sink's database (default tickets.db) [env CORRELATOR_TICKETS_DB]",
        )
        sub.set_defaults(func=func)
        if action == "list":
            sub.add_argument(
                "--state", choices=["open", "resolved"], help="only tickets in this state"
            )
            sub.add_argument("--limit", type=int, default=50, help="at most this many (50)")
        else:
            sub.add_argument("id", help="ticket (incident) id, or a unique prefix of it")

    topo = commands.add_parser("topology", help="check or explain a CMDB topology")
    topo_commands = topo.add_subparsers(dest="topology_command", required=True, metavar="ACTION")
    check = topo_commands.add_parser("check", help="validate a CMDB export and summarize it")
    check.add_argument("file")
    check.add_argument("--relations", help="relationship CSV of a ServiceNow-style CSV pair")
    check.set_defaults(func=_cmd_topology_check)
    explain = topo_commands.add_parser("explain", help="what a failure of one CI takes down")
    explain.add_argument("file")
    explain.add_argument("ci", help="CI id or name")
    explain.add_argument("--relations", help="relationship CSV of a ServiceNow-style CSV pair")
    explain.set_defaults(func=_cmd_topology_explain)

    bench = commands.add_parser(
        "bench", help="storm-replay benchmarks: a suite, or your own recording, into a report"
    )
    bench.add_argument(
        "--suite",
        choices=["quick", "full"],
        default="quick",
        help="quick (under 2 min) or full (under 20 min on 2 cores; default quick)",
    )
    bench.add_argument(
        "--out",
        default=_env("BENCH_OUT", "bench-report"),
        help="report directory: report.md, results.json, PNG charts (default bench-report) "
        "[env CORRELATOR_BENCH_OUT]",
    )
    bench.add_argument(
        "--runs",
        type=int,
        help="timed runs per figure after one warm-up (default 5; fewer is a smoke test)",
    )
    bench.add_argument(
        "--max-seconds",
        type=float,
        help="stop feeding each paced replay after this many seconds "
        "(default: 1 quick, 4 full, 10 for --recording)",
    )
    bench.add_argument(
        "--peer", choices=["alertmanager"], help="also run this system on the same storm"
    )
    bench.add_argument(
        "--recording",
        metavar="EVENTS_DIR_OR_FILE",
        help="replay this recording (event-log folder or any supported file) instead of a suite",
    )
    bench.add_argument(
        "--topology",
        default=_env("TOPOLOGY", None),
        help="CMDB export for --recording [env CORRELATOR_TOPOLOGY]",
    )
    bench.add_argument(
        "--rules",
        default=_env("RULES", None),
        help="rule file or folder for --recording [env CORRELATOR_RULES]",
    )
    bench.add_argument(
        "--compare-rules",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="with --recording: incidents, compression and latency under two rule sets",
    )
    bench.add_argument(
        "--cache",
        default=_env("BENCH_CACHE", None),
        help="where generated storms are kept (default ~/.cache/correlator/bench) "
        "[env CORRELATOR_BENCH_CACHE]",
    )
    bench.add_argument("--seed", type=int, default=0, help="storm generator seed (default 0)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CorrelatorError as exc:
        print(f"correlator: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
