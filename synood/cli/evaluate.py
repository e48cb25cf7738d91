"""`synood evaluate`: every score's AUROC, FPR95 and AUPR on an ID folder against OOD folders."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from synood import SCORE_TITLES
from synood.config import Config
from synood.data import images
from synood.records.runs import RunError
from synood.cli.common import CommandError, add_config_args, check_output, make_detector, run_store, say, write_output


SCORE_NAMES = tuple(SCORE_TITLES)
TITLES = {**SCORE_TITLES, "synood": "SynOOD"}  # "synood": NegLabel with a fine-tuned detector (--checkpoint)
METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")
TABLE_NOTE = "All values in %. AUROC is the same under every convention; --convention all shows each one."
BATCH = 32

def _ood_sets(specs: Sequence[str]) -> dict[str, str]:
    """NAME=DIR arguments as {name: folder}, checked."""
    sets: dict[str, str] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name = name.strip()
        if not sep or not name or not folder:
            raise CommandError(f"--ood {spec!r}: expected NAME=DIR, e.g. --ood textures=data/dtd")
        if name in sets or name == "Average":
            raise CommandError(f"--ood {spec!r}: the set name {name!r} is already taken")
        sets[name] = folder
    return sets


def _score_folder(detector, name: str, paths: Sequence[Path], tuned=None,
                  combination: str = "both") -> tuple[dict, list[str]]:
    """Scores of every readable image in paths, batch by batch; the messages of the skipped ones.
    With a tuned detector the "synood" score is added, from the same image features."""
    import torch

    chunks, skipped = [], []
    with tqdm(total=len(paths), desc=f"scoring {name}", unit="image", file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(paths), BATCH):
            batch = []
            for path in paths[start:start + BATCH]:
                try:
                    batch.append(images.load_image(path))
                except images.ImageError as exc:
                    skipped.append(str(exc))
                bar.update(1)
            if batch:
                found = detector.score(batch)
                if tuned is not None:
                    found["synood"] = tuned.score(found["raw"], detector.id_features, detector.negative_features,
                                                  detector.config, combination)
                chunks.append(found)
    names = [*SCORE_NAMES, "synood"] if tuned is not None else SCORE_NAMES
    return {key: torch.cat([c[key] for c in chunks]) for key in names if chunks}, skipped


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
    conventions = _conventions(args.convention)
    names = [*SCORE_NAMES, "synood"] if args.checkpoint else SCORE_NAMES
    methods = [m.strip() for m in (args.scores or ",".join(names)).split(",") if m.strip()]
    if not methods or any(m not in names for m in methods):
        raise CommandError(f"--scores {args.scores!r}: choose from {','.join(names)}"
                           + ("" if args.checkpoint else " (synood needs --checkpoint)"))
    from synood.records.checkpoint import CheckpointError

    checkpoint_path, tuned = _tuned(config, args.checkpoint) if args.checkpoint else (None, None)
    check_output(args.csv)
    ood = _ood_sets(args.ood)
    sets = {"ID": args.id, **{f"OOD {name}": folder for name, folder in ood.items()}}
    found = {}
    for key, folder in sets.items():  # every folder is checked before any model loads
        try:
            found[key] = images.find_images(folder)
        except images.ImageError as exc:
            raise CommandError(f"{key} folder {exc}") from None
        if not found[key]:
            raise CommandError(f"{key} folder {folder}: no image files ({', '.join(sorted(images.IMAGE_SUFFIXES))})")
    suite, detector = make_detector(config)
    if tuned is not None:
        try:
            tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
        except CheckpointError as exc:
            raise CommandError(f"--checkpoint {checkpoint_path}: {exc}") from None
    store = run_store(config)
    inputs = {"id": args.id, "ood": ood, "suite": suite.name, "methods": methods, "conventions": conventions,
              "checkpoint": str(checkpoint_path) if checkpoint_path else None}
    run = store.create("evaluate", config.to_dict("models", "neglabel", "finetune"), inputs)
    with store.recording(run.id):
        result = _evaluate_sets(detector, tuned, config, found, sets, ood, methods, suite, conventions)
    result["run"] = run.id
    store.update(run.id, status="completed", summary={m: r["average"] for m, r in result["methods"].items()},
                 artifacts={"csv": args.csv} if args.csv else {})
    if args.csv:
        write_output(args.csv, _csv(result))
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


def _evaluate_sets(detector, tuned, config: Config, found: dict, sets: dict, ood: dict, methods: list,
                   suite, conventions: list[str]) -> dict:
    """Score every folder, then every method's metrics per OOD set and their average, under each convention:
    methods -> method -> "sets" -> set -> convention -> metrics, and "average" -> convention -> metrics."""
    from synood.method.metrics import CONVENTIONS, MetricError, evaluate

    scored, info = {}, {}
    for key, paths in found.items():
        scored[key], skipped = _score_folder(detector, key, paths, tuned, config.finetune.combination)
        for message in skipped:
            say(f"skipped {message}")
        if len(skipped) == len(paths):
            raise CommandError(f"{key} folder {sets[key]}: none of its {len(paths)} image files could be read")
        info[key] = {"folder": sets[key], "count": len(paths) - len(skipped), "skipped": len(skipped)}
    id_info = info["ID"]
    result: dict[str, Any] = {"suite": suite.name, "unit": "percent",
                              "conventions": {c: CONVENTIONS[c] for c in conventions},
                              "id": id_info, "ood": {name: info[f"OOD {name}"] for name in ood}, "methods": {}}
    for method in methods:
        per_set: dict[str, dict] = {name: {} for name in result["ood"]}
        for name, entries in per_set.items():
            for convention in conventions:
                try:
                    m = evaluate(scored["ID"][method], scored[f"OOD {name}"][method], convention).as_percent()
                except MetricError as exc:
                    raise CommandError(f"{TITLES[method]} on {name}: {exc}") from None
                entries[convention] = {"convention": convention, **{k: m[k] for k in METRIC_KEYS},
                                       "id_count": id_info["count"], "ood_count": result["ood"][name]["count"]}
        average = {c: {"convention": c, **{k: sum(s[c][k] for s in per_set.values()) / len(per_set)
                                           for k in METRIC_KEYS}} for c in conventions}
        result["methods"][method] = {"sets": per_set, "average": average}
    if tuned is not None:
        result["checkpoint"] = {"run": tuned.meta.get("run"), "combination": config.finetune.combination}
    return result


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
            lines.append(f"{TITLES[method]:<12}" + "".join(
                f"  {c['auroc']:6.2f} {c['fpr95']:6.2f}".ljust(width + 2) for c in cells))
    return "\n".join([*lines, "", TABLE_NOTE])


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The evaluate sub-command."""
    p = sub.add_parser("evaluate", help="AUROC and FPR95 of each score on an ID folder against OOD folders")
    add_config_args(p)
    p.add_argument("--id", required=True, metavar="DIR", help="folder of in-distribution images (recursive)")
    p.add_argument("--ood", required=True, action="append", metavar="NAME=DIR", help="an OOD set; repeatable")
    p.add_argument("--scores", metavar="LIST",
                   help=f"comma-separated scores (default {','.join(SCORE_NAMES)}, plus synood with --checkpoint)")
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
