"""`synood evaluate`: every score's AUROC, FPR95 and AUPR on an ID folder against OOD folders."""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Sequence

from synood.config import Config
from synood.records.runs import EvaluateRecord, RunError
from synood.cli.common import (CommandError, StageBars, add_config_args, check_output, make_detector, run_store, say,
                               write_output)

METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")  # evaluation.METRIC_KEYS, kept torch-free here
TABLE_NOTE = "All values in %. AUROC is the same under every convention; --convention all shows each one."

def _ood_sets(specs: Sequence[str]) -> dict[str, str]:
    """NAME=DIR arguments as {name: folder}, checked."""
    sets: dict[str, str] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name = name.strip()
        if not sep or not name or not folder:
            raise CommandError(f"--ood {spec!r}: expected NAME=DIR, e.g. --ood textures=data/dtd")
        if name in sets or name in ("ID", "Average"):
            raise CommandError(f"--ood {spec!r}: the set name {name!r} is already taken")
        sets[name] = folder
    return sets


def _tuned(config: Config, reference: str):
    """The tuned detector of a detector file or of a fine-tuning run's id (CommandError when neither)."""
    from synood.records.checkpoint import CheckpointError, load_detector

    path = Path(reference)
    if not path.exists() and not reference.endswith(".safetensors"):
        try:
            run = run_store(config).get(reference)
        except RunError as exc:
            raise CommandError(f"--checkpoint {reference}: neither a detector file nor a run id ({exc})") from None
        if "detector" not in run.artifacts:
            raise CommandError(f"--checkpoint {reference}: run {run.id} is {run.status} and has no detector file yet")
        path = Path(run.artifacts["detector"])
    try:
        return path, load_detector(path)
    except CheckpointError as exc:
        raise CommandError(f"--checkpoint: {exc}") from None


def _conventions(choice: str) -> list[str]:
    """The metric conventions `--convention` names: one of synood.method.metrics.CONVENTIONS, or all of them."""
    from synood.method.metrics import CONVENTIONS

    if choice == "all":
        return list(CONVENTIONS)
    if choice not in CONVENTIONS:
        raise CommandError(f"--convention {choice!r}: choose from {', '.join(CONVENTIONS)} or all")
    return [choice]


def _cmd_evaluate(args: argparse.Namespace, config: Config) -> int:
    from synood.method.scorers import SCORERS, build, standard  # torch: after the parser, which stays torch-free

    conventions = _conventions(args.convention)
    names = [*standard(), *(n for n in SCORERS if n not in standard())] if args.checkpoint else standard()
    methods = [m.strip() for m in (args.scores or ",".join(names)).split(",") if m.strip()]
    if not methods or any(m not in names for m in methods):
        trained = ",".join(n for n in SCORERS if n not in standard())
        raise CommandError(f"--scores {args.scores!r}: choose from {','.join(names)}"
                           + ("" if args.checkpoint else f" ({trained} needs --checkpoint)"))
    from synood.pipelines import evaluation
    from synood.records.checkpoint import CheckpointError

    checkpoint_path, tuned = _tuned(config, args.checkpoint) if args.checkpoint else (None, None)
    check_output(args.csv)
    ood = _ood_sets(args.ood)
    folders = {"ID": args.id, **ood}
    found = {"ID": evaluation.folder_images("ID", args.id),  # every folder is checked before any model loads
             **{name: evaluation.folder_images(f"OOD {name}", folder) for name, folder in ood.items()}}
    suite, detector = make_detector(config)
    if tuned is not None:
        try:
            tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
        except CheckpointError as exc:
            raise CommandError(f"--checkpoint {checkpoint_path}: {exc}") from None
    scorers = {m: build(m, tuned, config.finetune.combination) for m in methods}
    context = {"suite": suite.name, "checkpoint": str(checkpoint_path) if checkpoint_path else None}
    store = run_store(config)
    run = store.create("evaluate", config.to_dict("models", "neglabel", "finetune"),
                       EvaluateRecord(folders, "ID", methods, conventions, context).inputs())
    bars = StageBars(unit="image")
    with store.recording(run.id):
        try:
            result = evaluation.evaluate(found, scorers, detector.encoder, detector.classifier, detector.inputs(),
                                         conventions, folders=folders, progress=bars)
        finally:
            bars.close()
    for message in result.skipped:
        say(f"skipped {message}")
    result.suite, result.run = suite.name, run.id
    if tuned is not None:
        result.checkpoint = {"run": tuned.meta.get("run"), "combination": config.finetune.combination}
    store.update(run.id, status="completed", summary=result.record(context).summary(),
                 artifacts={"csv": args.csv} if args.csv else {})
    report = result.to_dict()
    if args.csv:
        write_output(args.csv, _csv(report))
    print(json.dumps(report, indent=2) if args.json else _table(report))
    return 0


def _csv(result: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "ood_set", "convention", *METRIC_KEYS, "id_count", "ood_count"])
    for method, r in result["methods"].items():
        for name, entries in r["sets"].items():
            for s in entries.values():
                writer.writerow([method, name, *(s[k] for k in ("convention", *METRIC_KEYS, "id_count", "ood_count"))])
    return out.getvalue()


def _table(result: dict) -> str:
    """The paper's layout, once per convention under its name: one row per method, AUROC and FPR95 per OOD set,
    then their average."""
    from synood.method.scorers import SCORERS

    names = [*result["ood"], "Average"]
    width = max(13, *(len(n) for n in names))
    lines = [f"ID: {result['id']['folder']} ({result['id']['count']} images); OOD: "
             + ", ".join(f"{n} ({s['count']})" for n, s in result["ood"].items())]
    for convention, description in result["conventions"].items():
        lines += ["", f"Convention {convention}: {description}",
                  " " * 12 + "".join(f"  {n:^{width}}" for n in names),
                  f"{'Method':<12}" + f"  {'AUROC':>6} {'FPR95':>6}".ljust(width + 2) * len(names)]
        for method, r in result["methods"].items():
            cells = [*(s[convention] for s in r["sets"].values()), r["average"][convention]]
            lines.append(f"{SCORERS[method].title:<12}" + "".join(
                f"  {c['auroc']:6.2f} {c['fpr95']:6.2f}".ljust(width + 2) for c in cells))
    return "\n".join([*lines, "", TABLE_NOTE])


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The evaluate sub-command."""
    p = sub.add_parser("evaluate", help="AUROC and FPR95 of each score on an ID folder against OOD folders")
    add_config_args(p)
    p.add_argument("--id", required=True, metavar="DIR", help="folder of in-distribution images (recursive)")
    p.add_argument("--ood", required=True, action="append", metavar="NAME=DIR", help="an OOD set; repeatable")
    p.add_argument("--scores", metavar="LIST",
                   help="comma-separated scores of the registry (synood.method.scorers); default: every one that "
                        "needs no detector file, plus the trained ones (synood) with --checkpoint")
    p.add_argument("--checkpoint", metavar="FILE|RUN",
                   help="a fine-tuned detector file, or a fine-tuning run's id: adds the synood score "
                        "(finetune.combination picks the tuned parts it uses: both, projection, negatives, none)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--csv", metavar="PATH",
                   help="also write one row per (score, OOD set, convention) to this CSV file")
    p.add_argument("--convention", default="mos", metavar="NAME",
                   help="metric convention (FPR95 rule and AUPR estimator): mos (default, the paper's tables), "
                        "openood, neglabel, or all")
    p.set_defaults(func=_cmd_evaluate)
