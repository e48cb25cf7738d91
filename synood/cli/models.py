"""`synood config` and `synood models [download|load]`: the resolved configuration and the model suites."""
from __future__ import annotations

import argparse
import json
import sys


from synood.config import Config
from synood.models import suites
from synood.models.memory import Plan, size
from synood.models.interfaces import ROLE_TITLES, ROLES
from synood.cli.common import (add_config_args)


def _cmd_config(args: argparse.Namespace, config: Config) -> int:
    print(config.to_yaml(), end="")
    return 0


def models_report(config: Config) -> dict:
    """Every suite (or the one asked for) with each component's state, location and memory (memory_row)."""
    chosen = config.models.suite
    names = [n for n in suites.SUITE_CHOICES if n != "auto"] if chosen == "auto" else [chosen]
    report: dict = {"suites": []}
    for name in names:
        spec = suites.named_suite(name, config.models)
        found = suites.suite_availability(spec)
        suite = suites.Suite.from_config(config.models, spec)
        rows = [{"role": role, "component": spec.components[role].describe(), "state": a.state,
                 "where": a.where, "detail": a.detail, **memory_row(suite.plan(role))} for role, a in found.items()]
        report["suites"].append({"name": name, "title": spec.title, "description": spec.description,
                                 "available": all(a.ready for a in found.values()), "components": rows})
    if chosen == "auto":
        spec, notice = suites.resolve_suite(config.models)
        report["auto"] = {"suite": spec.name, "notice": notice}
    return report


def memory_row(decided: Plan) -> dict:
    """A component's size and memory as plain data: parameters (and where the count comes from), bytes on disk and
    to download (None: not known or not applicable), the estimate per dtype, and the dtype it would load at here."""
    found = decided.footprint
    return {
        "parameters": found.parameters if found else None, "counted_from": found.source if found else None,
        "disk_bytes": found.disk_bytes if found else None, "download_bytes": found.download_bytes if found else None,
        "estimates": found.estimates() if found and found.parameters else {},
        "dtype": decided.dtype, "fits": decided.fits, "needs": decided.needs, "memory_note": decided.note,
    }


def memory_line(row: dict) -> str:
    """memory_row in one line of text."""
    if row["parameters"] is None:
        return "size unknown (no weight files here, no published config on record)"
    if not row["parameters"]:
        return f"{row['counted_from']}"
    parts = [f"{row['parameters']:,} parameters ({row['counted_from']})"]
    if row["disk_bytes"] is not None:
        parts.append(f"on disk {size(row['disk_bytes'])}")
    if row["download_bytes"] is not None:
        parts.append(f"download {size(row['download_bytes'])}")
    parts.append("memory " + ", ".join(f"{dtype} {size(n)}" for dtype, n in row["estimates"].items()))
    verdict = "" if row["fits"] else ", does NOT fit in free memory"
    parts.append(f"here: {row['dtype']}{verdict}" + (f" ({row['memory_note']})" if row["memory_note"] else ""))
    return " | ".join(parts)


def _cmd_models(args: argparse.Namespace, config: Config) -> int:
    report = models_report(config)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for suite in report["suites"]:
        state = "ready" if suite["available"] else "not ready"
        print(f"suite {suite['name']} ({state}): {suite['description']}")
        for row in suite["components"]:
            print(f"  {ROLE_TITLES[row['role']]:<20} {row['component']:<60} {row['state']:<17} {row['where']}")
            print(f"  {'':<20} {memory_line(row)}")
        print()
    if "auto" in report:
        print(f"--suite auto resolves to: {report['auto']['suite']}")
        if report["auto"]["notice"]:
            print(f"  {report['auto']['notice']}")
    return 0


def _cmd_models_download(args: argparse.Namespace, config: Config) -> int:
    spec, _ = suites.resolve_suite(config.models)
    failed = 0
    for role in args.role or ROLES:
        component = spec.components[role]
        found = suites.probe(component)
        if found.state in (suites.sources.IN_PROCESS, suites.sources.LOCAL, suites.sources.INSTALLED):
            print(f"{role}: {component.describe()} is {found.state}; nothing to download")
            continue
        try:
            where = suites.download(component)
        except suites.ModelUnavailableError as exc:
            failed += 1
            print(f"{role}: download failed: {exc}", file=sys.stderr)
            continue
        print(f"{role}: {component.describe()} -> {where}")
    return 1 if failed else 0


def _cmd_models_load(args: argparse.Namespace, config: Config) -> int:
    suite = suites.Suite.from_config(config.models)
    if suite.notice:
        print(f"notice: {suite.notice}")
    for role in args.role or ROLES:
        component = suite.get(role, progress=lambda msg: print(msg, flush=True))
        info = component.info
        print(f"{role}: {info.name} | {info.architecture} | {info.parameters:,} parameters | "
              f"{info.weights} | {suite.dtypes[role]} | from {info.source}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The config and models sub-commands."""
    p = sub.add_parser("config", help="print the resolved configuration as YAML")
    add_config_args(p)
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("models", help="list model suites and where each component would load from")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_models)
    models_sub = p.add_subparsers(dest="models_command")
    d = models_sub.add_parser("download", help="fetch a suite's weights into the standard caches (needs network)")
    add_config_args(d)
    d.add_argument("--role", action="append", choices=ROLES, help="only this component; repeatable")
    d.set_defaults(func=_cmd_models_download)
    ld = models_sub.add_parser("load", help="load a suite's components and print what each is")
    add_config_args(ld)
    ld.add_argument("--role", action="append", choices=ROLES, help="only this component; repeatable")
    ld.set_defaults(func=_cmd_models_load)
