"""`synood data check`: whether a benchmark protocol's image sets are where their releases put them, complete and
readable, before an evaluation spends hours on them."""
from __future__ import annotations

import argparse
import json

from synood.cli.common import add_config_args, say
from synood.config import Config
from synood.data.benchmarks import BENCHMARKS, FoundSet, benchmark, locate, unreadable


def set_report(item: FoundSet, verify: bool) -> dict:
    """One set's row: found or missing, its count against the release's, unreadable files, how to obtain it."""
    spec = item.spec
    row: dict = {"set": spec.name, "role": spec.role, "group": spec.group, "expected": spec.expected,
                 "count": len(item.paths), "where": str(item.where) if item.where else None,
                 "looked": [str(path) for path in item.looked]}
    if not item.found:
        row["status"] = "missing"
    elif item.absent:
        row["status"] = "incomplete"
        row["absent"] = len(item.absent)
        row["absent_examples"] = item.absent[:3]
    else:
        row["status"] = "found" if len(item.paths) == spec.expected else "count differs"
    if verify and item.found:
        problems = unreadable(item.paths)
        row["unreadable"] = len(problems)
        row["unreadable_examples"] = problems[:3]
        if problems and row["status"] == "found":
            row["status"] = "unreadable files"
    if row["status"] != "found":
        row["obtain"] = spec.obtain
    return row


def _cmd_check(args: argparse.Namespace, config: Config) -> int:
    protocol = benchmark(args.benchmark)
    if args.verify:
        say(f"decoding every image of {protocol.name} (--verify): this reads each file once")
    rows = [set_report(item, args.verify) for item in locate(protocol, args.data_root).values()]
    ok = all(row["status"] == "found" for row in rows)
    if args.json:
        print(json.dumps({"benchmark": protocol.name, "data_root": args.data_root, "ready": ok, "sets": rows},
                         indent=2))
        return 0 if ok else 1
    print(f"{protocol.title}: data root {args.data_root}")
    for row in rows:
        role = "ID" if row["role"] == "id" else f"OOD{' ' + row['group'] if row['group'] else ''}"
        counts = f"{row['count']:,} of {row['expected']:,} images"
        print(f"  {row['set']:<12} {role:<9} {row['status']:<16} {counts:<26} {row['where'] or ''}")
        if row["status"] == "missing":
            print(f"      looked for: {', '.join(row['looked'])}")
        if row.get("absent"):
            print(f"      {row['absent']:,} listed files do not exist, e.g. {', '.join(row['absent_examples'])}")
        if row.get("unreadable"):
            print(f"      {row['unreadable']:,} files do not decode, e.g. {'; '.join(row['unreadable_examples'])}")
        if "obtain" in row:
            print(f"      to obtain: {row['obtain']}")
    print("ready" if ok else "not ready: see above")
    return 0 if ok else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The data sub-command and its `check`."""
    p = sub.add_parser("data", help="check a benchmark's image sets under a data root")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="report each set of a benchmark: found or missing, its image count "
                                          "against the release's, unreadable files (--verify), and how to obtain "
                                          "what is missing")
    add_config_args(c)
    c.add_argument("--benchmark", required=True, metavar="NAME", help=f"one of {', '.join(BENCHMARKS)}")
    c.add_argument("--data-root", required=True, metavar="DIR", help="the folder holding the benchmark's sets")
    c.add_argument("--verify", action="store_true", help="also decode every image (slow on the full sets)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_cmd_check)
