"""`synood evaluate`: every score's AUROC, FPR95 and AUPR on an ID folder against OOD folders."""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from synood.config import Config
from synood.records.runs import EvaluateRecord, RunError
from synood.cli.common import (CommandError, StageBars, add_config_args, check_output, make_detector, run_store, say,
                               write_output)

if TYPE_CHECKING:  # the engine imports torch: the parser stays torch-free
    from synood.data.benchmarks import Benchmark
    from synood.pipelines.evaluation import Evaluation
    from synood.pipelines.shards import Shards
    from synood.data.textcache import StageProgress

METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")  # evaluation.METRIC_KEYS, kept torch-free here
TABLE_NOTE = "All values in %. AUROC is the same under every convention; --convention all shows each one."
BOOTSTRAP_NOTE = ("v±h: the point estimate and half the width of its 95 % percentile bootstrap interval ({resamples} "
                  "resamples of the ID set and of each OOD set separately, seed {seed}; the interval may be "
                  "asymmetric: --json and --csv give its exact [lo, hi]).")

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


def conventions_of(choice: str) -> list[str]:
    """The metric conventions `--convention` names: one of synood.method.metrics.CONVENTIONS, or all of them."""
    from synood.method.metrics import CONVENTIONS

    if choice == "all":
        return list(CONVENTIONS)
    if choice not in CONVENTIONS:
        raise CommandError(f"--convention {choice!r}: choose from {', '.join(CONVENTIONS)} or all")
    return [choice]


def _cmd_evaluate(args: argparse.Namespace, config: Config) -> int:
    from synood.method.scorers import SCORERS, build, choices, standard  # torch: after the parser (torch-free)

    conventions = conventions_of(args.convention)
    check_bootstrap(args)
    if args.workers is not None and args.workers < 0:
        raise CommandError(f"--workers {args.workers}: give 0 (decode in this process) or more worker processes")
    names = choices(trained=bool(args.checkpoint))
    default = [*standard(), *(n for n in names if SCORERS[n].kind == "trained")]
    methods = [m.strip() for m in args.scores.split(",") if m.strip()] if args.scores else default
    if not methods or any(m not in names for m in methods):
        trained = ",".join(n for n in choices(trained=True) if n not in choices())
        raise CommandError(f"--scores {args.scores!r}: choose from {','.join(names)}"
                           + ("" if args.checkpoint else f" ({trained} needs --checkpoint)"))
    from synood.pipelines import evaluation
    from synood.records.checkpoint import CheckpointError

    checkpoint_path, tuned = _tuned(config, args.checkpoint) if args.checkpoint else (None, None)
    check_output(args.csv)
    id_set, found, folders, protocol = image_sets(args)  # every set is checked before any model loads
    if args.export_scores:
        _check_export(args.export_scores, list(found))
    shards = _shards(config)
    with shards.main_first():  # the first process mines and caches the negatives, the others read them
        suite, detector = make_detector(config)
    if tuned is not None:
        try:
            tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
        except CheckpointError as exc:
            raise CommandError(f"--checkpoint {checkpoint_path}: {exc}") from None
    scorers = {m: build(m, tuned, config.finetune.combination) for m in methods}
    context = {"suite": suite.name, "checkpoint": str(checkpoint_path) if checkpoint_path else None,
               **({"bootstrap": {"resamples": args.bootstrap, "seed": args.seed}} if args.bootstrap else {}),
               **(protocol_context(protocol, found, args.data_root) if protocol else {}),
               **({"processes": shards.count} if shards.count > 1 else {}),
               **({"autocast": True} if args.autocast else {})}
    if not shards.is_main:  # another process of `accelerate launch`: its part of the scores, then done
        _evaluate(args, found, scorers, detector, conventions, id_set, folders, protocol, shards, None)
        return 0
    store = run_store(config)
    run = store.create("evaluate", config.to_dict("models", "neglabel", "finetune"),
                       EvaluateRecord(folders, id_set, methods, conventions, context).inputs())
    def work(progress: StageProgress) -> Evaluation:
        result = _evaluate(args, found, scorers, detector, conventions, id_set, folders, protocol, shards, progress)
        result.suite = suite.name
        if tuned is not None:
            result.checkpoint = {"run": tuned.meta.get("run"), "combination": config.finetune.combination}
        if protocol:
            result.benchmark = {"name": protocol.name, "title": protocol.title, "data_root": args.data_root,
                                "lists_digest": context["lists_digest"]}
        return result

    bars = StageBars(unit="image")
    try:
        result = evaluation.execute(store, run.id, config.paths.home, work, progress=bars)
    finally:
        bars.close()
    assert result is not None  # no stop check: only the app stops an evaluation
    for message in result.skipped:
        say(f"skipped {message}")
    if args.export_scores:
        written = evaluation.write_scores(result, args.export_scores)
        say(f"wrote {len(written) - 1} score files and {written[-1]}")
    artifacts = {"csv": args.csv, "scores": args.export_scores}
    store.update(run.id, artifacts={k: v for k, v in artifacts.items() if v})
    show(result.to_dict(), args)
    return 0


def _evaluate(args: argparse.Namespace, found: dict[str, list[Path]], scorers: dict, detector, conventions: list[str],
              id_set: str, folders: dict[str, str], protocol: Benchmark | None, shards: Shards,
              bars: StageProgress | None) -> Evaluation:
    """The engine's evaluation of the sets with the scorers' negative pools (mined first, in process order)."""
    from synood.pipelines import evaluation

    with shards.main_first():
        pools = {s.pool: detector.pool(s.pool, bars) for s in scorers.values()}
    return evaluation.evaluate(found, scorers, detector.encoder, detector.classifier, detector.inputs(), conventions,
                               id_set=id_set, folders=folders, progress=bars, bootstrap=args.bootstrap,
                               seed=args.seed, pools=pools, groups=protocol.grouped() if protocol else None,
                               shards=shards, workers=args.workers, autocast=args.autocast)


def _shards(config: Config) -> Shards:
    """Under `accelerate launch` with several processes, the engine's shards (each process scores a contiguous
    part of every set, on its own device), else one process."""
    import torch
    from accelerate import PartialState

    from synood.pipelines.shards import Accelerated, Single

    state = PartialState(cpu=config.models.device == "cpu" or not torch.cuda.is_available())
    if state.num_processes == 1:
        return Single()
    if config.models.device == "auto" and state.device.type != "cpu":
        config.models.device = str(state.device)
    return Accelerated(state)


def image_sets(args: argparse.Namespace) -> tuple[str, dict[str, list[Path]], dict[str, str], Benchmark | None]:
    """(the ID set's name, each set's image files, each set's folder, the protocol) from --id and --ood, or from
    --benchmark and --data-root."""
    from synood.data import benchmarks
    from synood.pipelines import evaluation

    if args.benchmark:
        if args.id or args.ood or args.generation:
            raise CommandError("--benchmark names its own sets: give it without --id, --ood and --generation")
        if not args.data_root:
            raise CommandError(f"--benchmark {args.benchmark} needs --data-root DIR, the folder holding its sets")
        protocol = benchmarks.benchmark(args.benchmark)
        located = benchmarks.usable(protocol, args.data_root)
        for name, item in located.items():
            if item.absent:
                say(f"{name}: {len(item.absent):,} files its list names do not exist (`synood data check`)")
        return (protocol.id_set.name, {name: item.paths for name, item in located.items()},
                {name: str(item.where) for name, item in located.items()}, protocol)
    if args.generation:
        if args.id or args.ood:
            raise CommandError("--generation names its own sets (its sources as ID, its synthetic images as OOD): "
                               "give it without --id and --ood")
        found = evaluation.generation_sets(args.generation)
        return "sources", found, {name: str(args.generation) for name in found}, None
    if not args.id or not args.ood:
        raise CommandError("give --id DIR and at least one --ood NAME=DIR, --benchmark NAME --data-root DIR, or "
                           "--generation DIR")
    ood = _ood_sets(args.ood)
    found = {"ID": evaluation.folder_images("ID", args.id),
             **{name: evaluation.folder_images(f"OOD {name}", folder) for name, folder in ood.items()}}
    return "ID", found, {"ID": args.id, **ood}, None


def protocol_context(protocol: Benchmark, found: dict[str, list[Path]], root: str) -> dict:
    """What an evaluate run records of its protocol, so that it can be repeated: its name, the data root, each set's
    image count and the digest of every set's file list."""
    from synood.data.benchmarks import lists_digest

    return {"benchmark": protocol.name, "data_root": root, "lists_digest": lists_digest(found, root),
            "sets": {name: len(paths) for name, paths in found.items()}}


def _check_export(folder: str, names: Sequence[str]) -> None:
    """Fail before any model loads when --export-scores cannot be a folder or a set name cannot name a file."""
    from synood.data.scorefiles import check_name

    if Path(folder).exists() and not Path(folder).is_dir():
        raise CommandError(f"--export-scores {folder}: a file, not a folder")
    for name in names:
        check_name(name)


def check_bootstrap(args: argparse.Namespace) -> None:
    """--bootstrap N and --seed S: N >= 0 whole resamples (0 = none)."""
    if args.bootstrap < 0:
        raise CommandError(f"--bootstrap {args.bootstrap}: give a number of resamples (e.g. 1000), or 0 for none")


def show(report: dict, args: argparse.Namespace) -> None:
    """A metrics report to stdout (table, or JSON with --json) and to --csv when asked."""
    if args.csv:
        write_output(args.csv, metrics_csv(report))
    print(json.dumps(report, indent=2) if args.json else metrics_table(report))


def metrics_csv(result: dict) -> str:
    """One row per (method, OOD set, convention); with a bootstrap, each metric's interval as _ci95_lo/_hi."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    intervals = [f"{k}_ci95_{end}" for k in METRIC_KEYS for end in ("lo", "hi")] if "bootstrap" in result else []
    writer.writerow(["method", "ood_set", "convention", *METRIC_KEYS, "id_count", "ood_count", *intervals])
    for method, r in result["methods"].items():
        for name, entries in r["sets"].items():
            for s in entries.values():
                writer.writerow([method, name, *(s[k] for k in ("convention", *METRIC_KEYS, "id_count", "ood_count")),
                                 *(s["ci95"][k][i] for k in METRIC_KEYS for i in (0, 1) if intervals)])
    return out.getvalue()


def _cell(entry: dict, key: str) -> str:
    """One value of the table, `v±h` (h = half the interval's width) when it has a bootstrap interval."""
    from synood.pipelines.report import half_width

    half = half_width(entry, key)
    return f"{entry[key]:6.2f}" if half is None else f"{entry[key]:6.2f}±{half:<5.2f}"


def metrics_table(result: dict) -> str:
    """The paper's layout, once per convention under its name: one row per method, AUROC and FPR95 per OOD set,
    then their average."""
    from synood.pipelines.report import table_columns, table_rows

    names = table_columns(result)
    value = 12 if "bootstrap" in result else 6  # the width of one value
    width = max(2 * value + 1, *(len(n) for n in names))
    lines = [f"ID: {result['id']['folder']} ({result['id']['count']} images); OOD: "
             + ", ".join(f"{n} ({s['count']})" for n, s in result["ood"].items())]
    for convention, description in result["conventions"].items():
        lines += ["", f"Convention {convention}: {description}",
                  " " * 12 + "".join(f"  {n:^{width}}" for n in names),
                  f"{'Method':<12}" + (f"  {'AUROC':>6} " + " " * (value - 6) + f"{'FPR95':>6}").ljust(width + 2) * len(names)]
        for title, cells in table_rows(result, convention):
            lines.append(f"{title:<12}" + "".join(
                f"  {_cell(c, 'auroc')} {_cell(c, 'fpr95')}".ljust(width + 2) for c in cells))
    notes = [TABLE_NOTE, *([BOOTSTRAP_NOTE.format(**result["bootstrap"])] if "bootstrap" in result else [])]
    return "\n".join([*lines, "", *notes])


def add_output_args(p: argparse.ArgumentParser) -> None:
    """The flags of a metrics report: --json, --csv, --convention, --bootstrap and --seed."""
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--csv", metavar="PATH",
                   help="also write one row per (score, OOD set, convention) to this CSV file")
    p.add_argument("--convention", default="mos", metavar="NAME",
                   help="metric convention (FPR95 rule and AUPR estimator): mos (default, the paper's tables), "
                        "openood, neglabel, or all")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="add a 95 %% percentile interval to every metric from N bootstrap resamples of the ID set "
                        "and of each OOD set separately (e.g. 1000; default 0: none)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="the bootstrap's random seed (default 0)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The evaluate sub-command."""
    p = sub.add_parser("evaluate", help="AUROC and FPR95 of each score on an ID folder against OOD folders")
    add_config_args(p)
    p.add_argument("--id", metavar="DIR", help="folder of in-distribution images (recursive)")
    p.add_argument("--ood", action="append", metavar="NAME=DIR", help="an OOD set; repeatable")
    p.add_argument("--benchmark", metavar="NAME",
                   help="instead of --id/--ood, a protocol's sets under --data-root: mos (the paper's Table 1) or "
                        "openood-v1.5 (Table 2, from OpenOOD's imglists; near and far averages); "
                        "`synood data check` first")
    p.add_argument("--data-root", metavar="DIR", help="the folder holding --benchmark's sets")
    p.add_argument("--generation", metavar="DIR",
                   help="instead of --id/--ood, a generation (folder or manifest.jsonl from `synood generate`): its "
                        "source images as the ID set, its synthetic images as the OOD set: how near the boundary "
                        "the synthetic images sit for each score")
    p.add_argument("--scores", metavar="LIST",
                   help="comma-separated scores of the registry (synood.method.scorers); default: every one that "
                        "needs no detector file and no pool of its own, plus the trained ones (synood) with "
                        "--checkpoint; csp mines its own negative pool on first use")
    p.add_argument("--checkpoint", metavar="FILE|RUN",
                   help="a fine-tuned detector file, or a fine-tuning run's id: adds the synood score "
                        "(finetune.combination picks the tuned parts it uses: both, projection, negatives, none)")
    add_output_args(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that decode and preprocess the images beside the model (default: 0 on a machine "
                        "of 2 cores or fewer, where they did not pay, else one less than the cores, at most 8)")
    p.add_argument("--autocast", action="store_true",
                   help="run the encoder and classifier under torch.autocast (float16 on CUDA, bfloat16 on CPU): "
                        "faster on a GPU; its features and logits are cached apart from float32's")
    p.add_argument("--export-scores", metavar="DIR",
                   help="also write every image's scores in OpenOOD's form: DIR/<score>/scores/<set>.npz (pred, "
                        "conf, label; label -1 = OOD) and DIR/scores.csv; `synood metrics --scores DIR` reads them")
    p.set_defaults(func=_cmd_evaluate)
