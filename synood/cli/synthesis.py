"""`synood select` and `synood generate`: stage 1, from a training folder to near-boundary images."""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path


from synood.config import Config
from synood.models.interfaces import Component
from synood.cli.common import (CommandError, add_config_args, check_output, image_bar, open_suite,
                               make_detector, positive, run_store, say)


def _cmd_select(args: argparse.Namespace, config: Config) -> int:
    from synood.data.selection import select, write_selection

    check_output(args.out)
    per_class = args.per_class or config.synthesis.per_class
    bar, progress = image_bar("measuring")
    try:
        chosen, problems = select(args.train, per_class, progress)
    finally:
        bar.close()
    for problem in problems:
        say(f"skipped {problem}")
    write_selection(args.out, chosen)
    classes = sorted({item.cls for item in chosen})
    known = len({item.cls for item in chosen if item.class_index is not None})
    say(f"selected {len(chosen):,} images from {len(classes):,} classes ({known:,} matched to ImageNet classes), "
        f"at most {per_class} per class by file bytes per pixel; {len(problems)} unreadable; written to {args.out}")
    return 0


def _settings_flags(args: argparse.Namespace, config: Config) -> None:
    """Apply generate's dedicated synthesis flags, before any model loads (SynthesisConfig checks each value)."""
    for key in ("iterations", "loss", "gradient", "step_size", "seed"):
        value = getattr(args, key)
        if value is not None:
            setattr(config.synthesis, key, value)


def _cmd_generate(args: argparse.Namespace, config: Config) -> int:
    import torch
    from accelerate import PartialState

    from synood.pipelines.generation import Parts, check_settings, generate, settings_record
    from synood.data.selection import read_selection

    _settings_flags(args, config)
    items = read_selection(args.selection)[: args.limit]
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a folder")
    # Under `accelerate launch`: this process's rank, the world size and its device (gloo on CPU-only machines).
    state = PartialState(cpu=config.models.device == "cpu" or not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    if world > 1 and config.models.device == "auto" and state.device.type != "cpu":
        config.models.device = str(state.device)
    suite = open_suite(config)
    labeller, generator = suite.get("labeller", progress=say), suite.get("generator", progress=say)
    classifier, encoder = suite.get("classifier", progress=say), suite.get("encoder", progress=say)
    loaded: dict[str, Component] = {"labeller": labeller, "generator": generator, "classifier": classifier,
                                    "encoder": encoder}
    components = {role: part.info.name for role, part in loaded.items()}
    expected = settings_record(args.selection, components, config.synthesis)
    if rank == 0:  # the first process records the settings, then every process checks them
        check_settings(out, expected)
    state.wait_for_everyone()
    if rank != 0:
        check_settings(out, expected)
    _, detector = make_detector(config, suite)
    parts = Parts(generator, classifier, labeller, detector)
    store = run_store(config) if rank == 0 else None  # the first process records the run for all of them
    if store:
        run = store.create("generate", config.to_dict("models", "neglabel", "synthesis"),
                           {"selection": args.selection, "out": str(out), "items": len(items), "processes": world,
                            "components": components})
    start = time.perf_counter()
    with store.recording(run.id) if store else contextlib.nullcontext():
        counts = generate(items, out, parts, config.synthesis, rank, world, log=say)
    say(f"[{rank}] generated {counts['generated']}, skipped {counts['skipped']} finished before, "
        f"{counts['failed']} failed, in {time.perf_counter() - start:.1f} s; "
        f"{out / 'manifest.jsonl'} lists {counts['merged']} of {len(items)} items")
    state.wait_for_everyone()
    if store:
        from synood.data.manifest import MANIFEST, Manifest

        merged = len(Manifest(out).done() & {item.id for item in items})
        store.update(run.id, status="completed" if merged == len(items) else "failed",
                     summary={"merged": merged, "items": len(items), **{f"rank0_{k}": v for k, v in counts.items()}},
                     artifacts={"manifest": str(out / MANIFEST)},
                     message="" if merged == len(items) else f"{len(items) - merged} items not generated")
    return 1 if counts["failed"] else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The select and generate sub-commands."""
    p = sub.add_parser("select", help="pick the ID images to synthesise from: per class, the most file bytes per pixel")
    add_config_args(p)
    p.add_argument("--train", required=True, metavar="DIR", help="training folder, one sub-folder of images per class")
    p.add_argument("--per-class", type=positive, metavar="K", help="images kept per class (default synthesis.per_class, 50)")
    p.add_argument("--out", default="selection.jsonl", metavar="FILE", help="selection file (default selection.jsonl)")
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("generate", help="synthesise near-boundary images for a selection; resumable, and sharded "
                                        "over processes under `accelerate launch`")
    add_config_args(p)
    p.add_argument("--selection", required=True, metavar="FILE", help="from `synood select`")
    p.add_argument("--out", required=True, metavar="DIR", help="generation folder: images/ and manifest.jsonl")
    p.add_argument("--limit", type=positive, metavar="N", help="only the first N items of the selection")
    p.add_argument("--iterations", type=positive, help="noise-optimisation iterations (default 3)")
    p.add_argument("--loss", help="squared (default, the reference code's), hinge, or energy (paper eq. 7)")
    p.add_argument("--gradient", help="skip (default) or full (backpropagate through every denoising step)")
    p.add_argument("--step-size", type=float, help="noise step r*rho (default: the generator's own, 10 for SD2)")
    p.add_argument("--seed", type=int, help="base seed; each item's seed derives from it and the item (default 0)")
    p.set_defaults(func=_cmd_generate)
