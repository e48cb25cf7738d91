"""`synood finetune` and `synood runs`: stages 2 and 3 from a generation folder, and the recorded runs."""
from __future__ import annotations

import argparse
import dataclasses
import json
import time


from synood.config import Config
from synood.cli.common import (CommandError, add_config_args, image_bar, make_detector, positive, run_store, say)


def _finetune_flags(args: argparse.Namespace, config: Config) -> None:
    """Apply finetune's dedicated flags, before any model loads (the config checks each value when set)."""
    if args.synthetic_images is not None:
        config.finetune.synthetic_images = args.synthetic_images
    if args.joint:
        config.negtune.joint = True
    if args.stage3_projection:
        config.negtune.use_projection = True


def _cmd_finetune(args: argparse.Namespace, config: Config) -> int:
    from synood.pipelines import training

    store = run_store(config)
    if args.resume:
        run = store.get(args.resume)
        config = training.resume_config(run, config.paths.home)
        generation = run.inputs["generation"]
    else:
        if not args.generation:
            raise CommandError("give --generation DIR (a `synood generate` folder) or --resume RUN")
        _finetune_flags(args, config)
        generation = args.generation
    from synood.data.manifest import load_manifest

    load_manifest(generation)  # a wrong folder fails before any model loads
    suite, detector = make_detector(config)
    bar, progress = image_bar("image features")
    try:
        data = training.training_data(generation, detector, config, progress)
    finally:
        bar.close()
    for problem in data.info["skipped"]:
        say(f"skipped {problem}")
    info = data.info
    if not args.resume:
        run = training.start(store, config, generation, data, suite.name)
    say(f"run {run.id}: {info['synthetic']:,} synthetic and {info['id']:,} ID images, {info['negatives_used']:,} of "
        f"{info['negatives_count']:,} negatives paired; stages "
        + ", ".join(f"{stage} x{epochs}" for stage, epochs in training.plan(config)))
    say(f"conventions: {training.conventions(config)}")

    def report(epoch) -> None:
        say(f"[{run.id}] {epoch.stage} epoch {epoch.epoch}: loss {epoch.loss:.4f}, accuracy {epoch.accuracy:.3f}, "
            f"lr {epoch.lr:.2e}")

    run = training.execute(store, run, data, config, on_epoch=report)
    print(json.dumps({"run": run.id, "status": run.status, "detector": run.artifacts.get("detector"),
                      "summary": run.summary}, indent=2) if args.json else
          f"run {run.id} {run.status}; detector: {run.artifacts.get('detector')}")
    return 0 if run.status == "completed" else 1


def _cmd_runs(args: argparse.Namespace, config: Config) -> int:
    store = run_store(config)
    if args.run:
        run = store.get(args.run)
        record = {**dataclasses.asdict(run), "epochs": store.epochs(run.id)}
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        for key in ("id", "kind", "status", "message"):
            print(f"{key:<10} {record[key]}")
        for key in ("inputs", "summary", "artifacts"):
            print(f"{key:<10} {json.dumps(record[key])}")
        for epoch in record["epochs"]:
            print(f"  {epoch['stage']:<10} epoch {epoch['epoch']:>3}  loss {epoch['loss']:.4f}  "
                  f"accuracy {epoch['accuracy']:.3f}")
        return 0
    found = store.list(args.kind)
    if args.json:
        print(json.dumps([dataclasses.asdict(run) for run in found], indent=2))
        return 0
    if not found:
        print(f"no runs yet in {store.path}")
        return 0
    for run in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
        summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in run.summary.items()
                            if not isinstance(v, dict))
        print(f"{run.id:<24} {run.kind:<9} {run.status:<12} {when}  {summary}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The finetune and runs sub-commands."""
    p = sub.add_parser("finetune", help="stages 2 and 3 on a generation: train the projection and the negative "
                                        "labels' features; every epoch is recorded and resumable")
    add_config_args(p)
    p.add_argument("--generation", metavar="DIR", help="a `synood generate` folder (or its manifest.jsonl)")
    p.add_argument("--synthetic-images", type=positive, metavar="M",
                   help="use a seeded subset of M synthetic images (default all)")
    p.add_argument("--joint", action="store_true", help="train projection and negatives together (ablation)")
    p.add_argument("--stage3-projection", action="store_true",
                   help="stage 3 sees projected features (ablation; the paper's best excludes it)")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped, failed or interrupted run from its last epoch")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("runs", help="list recorded runs (generate, finetune, evaluate), or show one with its epochs")
    add_config_args(p)
    p.add_argument("run", nargs="?", metavar="RUN", help="show this run in full")
    p.add_argument("--kind", choices=("generate", "finetune", "evaluate"), help="only runs of this kind")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_runs)
