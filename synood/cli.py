"""The `synood` command line. Every subcommand calls the same library functions as the app."""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from . import SCORE_TITLES, __version__, images
from .config import Config, ConfigError, load_config
from .models import suites
from .models.interfaces import ROLE_TITLES, ROLES
from .runs import RunError
from .wordnet import WordNetUnavailableError

SCORE_NAMES = tuple(SCORE_TITLES)
TITLES = {**SCORE_TITLES, "synood": "SynOOD"}  # "synood": NegLabel with a fine-tuned detector (--checkpoint)
METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")
TABLE_NOTE = "All values in %. AUROC is the same under every convention; --convention all shows each one."
BATCH = 32
ROLES_FOR_GENERATION = ("labeller", "generator", "classifier", "encoder")

MODEL_FLAGS = {  # flag -> ModelsConfig field
    "--suite": "suite", "--encoder": "encoder", "--encoder-weights": "encoder_weights",
    "--classifier": "classifier", "--classifier-weights": "classifier_weights",
    "--generator": "generator", "--labeller": "labeller", "--device": "device", "--dtype": "dtype",
}
FLAG_HELP = {
    "--suite": f"model suite: {', '.join(suites.SUITE_CHOICES)} (default auto)",
    "--encoder": "open_clip architecture, e.g. ViT-B-16-quickgelu",
    "--encoder-weights": "open_clip pretrained tag (openai), hf-hub:org/repo, or a checkpoint file",
    "--classifier": "torchvision architecture, e.g. resnet50",
    "--classifier-weights": "torchvision weights name (IMAGENET1K_V2) or a .pth/.safetensors file",
    "--generator": "diffusers inpainting hub id or local folder",
    "--labeller": "transformers image-text-to-text hub id or local folder (e.g. a LLaVA-1.5 copy)",
    "--device": "auto (CUDA if present, else CPU), cpu, cuda or cuda:N",
    "--dtype": "auto, float32, float16 or bfloat16",
}


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The flags that build a Config: a YAML file, --set overrides and the model flags."""
    parser.add_argument("--config", metavar="FILE", help="YAML file with config sections (see `synood config`)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="override one config value; repeatable")
    for flag, key in MODEL_FLAGS.items():
        parser.add_argument(flag, dest=f"models_{key}", metavar=key.split("_")[-1].upper(), help=FLAG_HELP[flag])


def config_from_args(args: argparse.Namespace) -> Config:
    """Defaults < --config file < --set < dedicated flags; its image limits then hold for the whole process."""
    overrides = list(args.set)
    for key in MODEL_FLAGS.values():
        value = getattr(args, f"models_{key}")
        if value is not None:
            overrides.append(f"models.{key}={json.dumps(value)}")
    config = load_config(args.config, overrides)
    images.set_limits(config.images)
    return config


def _cmd_config(args: argparse.Namespace, config: Config) -> int:
    print(config.to_yaml(), end="")
    return 0


def models_report(config: Config) -> dict:
    """Every suite (or the one asked for) with each component's state and location."""
    chosen = config.models.suite
    names = [n for n in suites.SUITE_CHOICES if n != "auto"] if chosen == "auto" else [chosen]
    report: dict = {"suites": []}
    for name in names:
        spec, _ = suites.resolve_suite(dataclasses.replace(config.models, suite=name))
        found = suites.suite_availability(spec)
        rows = [{"role": role, "component": spec.components[role].describe(), "state": a.state,
                 "where": a.where, "detail": a.detail} for role, a in found.items()]
        report["suites"].append({"name": name, "title": spec.title, "description": spec.description,
                                 "available": all(a.ready for a in found.values()), "components": rows})
    if chosen == "auto":
        spec, notice = suites.resolve_suite(config.models)
        report["auto"] = {"suite": spec.name, "notice": notice}
    return report


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
              f"{info.weights} | from {info.source}")
    return 0


class CommandError(Exception):
    """Bad input to a sub-command: printed as "synood: error: ..." with exit status 2."""


class StageBars:
    """A (stage, done, total) progress callback (textcache.StageProgress) drawn as one tqdm bar per named stage
    on stderr: counted stages in `unit`s, single steps (total 1) as one step."""

    def __init__(self, unit: str = "prompt"):
        self.unit, self.bar, self.stage = unit, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or stage != self.stage or done < self.bar.n or total != self.bar.total:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, unit=self.unit if total > 1 else "step", file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _bar(desc: str) -> tuple[tqdm, Any]:
    """An image-counting bar on stderr and the (done, total) callback that drives it."""
    bar = tqdm(desc=desc, unit="image", file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _components(config: Config, *roles: str) -> tuple[suites.Suite, list[Any]]:
    """The configured suite and its loaded components, with its notice and loading messages on stderr."""
    suite = suites.Suite.from_config(config.models)
    if suite.notice:
        _say(f"notice: {suite.notice}")
    _say(f"suite: {suite.name} ({suite.spec.title})")
    return suite, [suite.get(role, progress=_say) for role in roles]


def _detector(config: Config, suite: suites.Suite | None = None) -> tuple[suites.Suite, Any]:
    """The suite (the configured one unless given) and a Detector on its encoder and classifier."""
    from .detect import Detector

    if suite is None:
        suite, _ = _components(config)
    classifier, encoder = (suite.get(role, progress=_say) for role in ("classifier", "encoder"))
    bars = StageBars()
    try:
        return suite, Detector(encoder, classifier, config.neglabel, progress=bars)
    finally:
        bars.close()


def _check_output(path: str | None) -> None:
    """Fail before any long work when an output file's folder does not exist."""
    if path and path != "-" and not Path(path).parent.is_dir():
        raise CommandError(f"cannot write {path}: no such folder {Path(path).parent}")


def _output(path: str, text: str) -> None:
    """Text to stdout for "-", else atomically to the file."""
    if path == "-":
        sys.stdout.write(text)
    else:
        from . import storage

        storage.write_text(path, text)


def _cmd_mine(args: argparse.Namespace, config: Config) -> int:
    from . import mining

    fmt = args.format or ("json" if args.out.endswith(".json") else "tsv")
    _check_output(args.out)
    from .detect import IMAGENET_CLASSNAMES  # torch and open_clip: after the checks that fail fast

    suite, (encoder,) = _components(config, "encoder")
    start = time.perf_counter()
    bars = StageBars()
    try:
        labels, _ = mining.negatives(encoder.identity, encoder.text_features, IMAGENET_CLASSNAMES, config.neglabel,
                                     bars)
    finally:
        bars.close()
    seconds = time.perf_counter() - start
    rows = [dataclasses.asdict(label) for label in labels]
    if fmt == "json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        text = "word\tpos\tlexname\tpercentile\n" + "".join(
            f"{r['word']}\t{r['pos']}\t{r['lexname']}\t{r['percentile']:.6f}\n" for r in rows)
    _output(args.out, text)
    counts = ", ".join(f"{sum(r['pos'] == pos for r in rows):,} {pos}" for pos in mining.POS_ORDER)
    n = config.neglabel
    _say(f"mined {len(rows):,} negative labels ({counts}) with the {suite.name} suite's encoder over "
         f"{len(IMAGENET_CLASSNAMES)} ID labels in {seconds:.1f} s; percentile {n.percentile:g}, "
         f"keep_ratio {n.keep_ratio:g}, prune_csp {str(n.prune_csp).lower()}"
         + ("" if args.out == "-" else f"; written to {args.out}"))
    return 0


def _top(similarities, names: Sequence[str], k: int) -> list[dict]:
    values, indices = similarities.topk(min(k, len(names)))
    return [{"label": names[i], "similarity": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist())]


def _cmd_score(args: argparse.Namespace, config: Config) -> int:
    from .classnames import display_names, distinct

    loaded, failed = {}, []
    for path in args.images:
        try:
            loaded[path] = images.load_image(path)
        except images.ImageError as exc:
            failed.append({"image": path, "error": str(exc)})
            print(f"synood: error: {exc}", file=sys.stderr)
    results = []
    if loaded:
        suite, detector = _detector(config)
        pictures = list(loaded.values())
        scores = detector.score(pictures)
        features = scores["features"]
        id_sims, neg_sims = features @ detector.id_features.T, features @ detector.negative_features.T
        id_names = display_names(detector.id_names)
        negative_names = distinct([label.word for label in detector.negatives],
                                  [label.pos for label in detector.negatives])
        for i, path in enumerate(loaded):
            results.append({"image": path, "scores": {name: float(scores[name][i]) for name in SCORE_NAMES},
                            "top_id": _top(id_sims[i], id_names, args.top),
                            "top_negative": _top(neg_sims[i], negative_names, args.top)})
    if args.json:
        print(json.dumps({"suite": suite.name if loaded else None, "images": results, "errors": failed}, indent=2))
        return 1 if failed else 0
    for r in results:
        print(r["image"])
        print("  scores     " + "  ".join(f"{SCORE_TITLES[k]} {v:.4f}" for k, v in r["scores"].items()))
        for key, title in (("top_id", "ID labels"), ("top_negative", "negatives")):
            print(f"  {title:<10} " + ", ".join(f"{t['label']} {t['similarity']:.3f}" for t in r[key]))
    return 1 if failed else 0


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
    from .checkpoint import CheckpointError, load_detector

    path = Path(reference)
    if not path.exists() and not reference.endswith(".safetensors"):
        try:
            run = _store(config).get(reference)
        except RunError as exc:
            raise CommandError(f"--checkpoint {reference}: neither a detector file nor a run id ({exc})") from None
        if "detector" not in run.artifacts:
            raise CommandError(f"--checkpoint {reference}: run {run.id} is {run.status} and has no detector file yet")
        path = Path(run.artifacts["detector"])
    try:
        return path, load_detector(path)
    except CheckpointError as exc:
        raise CommandError(f"--checkpoint: {exc}") from None


def _store(config: Config):
    from .runs import store_for

    return store_for(config.paths.home)


def _conventions(choice: str) -> list[str]:
    """The metric conventions `--convention` names: one of synood.metrics.CONVENTIONS, or all of them."""
    from .metrics import CONVENTIONS

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
    from .checkpoint import CheckpointError

    checkpoint_path, tuned = _tuned(config, args.checkpoint) if args.checkpoint else (None, None)
    _check_output(args.csv)
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
    suite, detector = _detector(config)
    if tuned is not None:
        try:
            tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
        except CheckpointError as exc:
            raise CommandError(f"--checkpoint {checkpoint_path}: {exc}") from None
    store = _store(config)
    inputs = {"id": args.id, "ood": ood, "suite": suite.name, "methods": methods, "conventions": conventions,
              "checkpoint": str(checkpoint_path) if checkpoint_path else None}
    run = store.create("evaluate", config.to_dict("models", "neglabel", "finetune"), inputs)
    with store.recording(run.id):
        result = _evaluate_sets(detector, tuned, config, found, sets, ood, methods, suite, conventions)
    result["run"] = run.id
    store.update(run.id, status="completed", summary={m: r["average"] for m, r in result["methods"].items()},
                 artifacts={"csv": args.csv} if args.csv else {})
    if args.csv:
        _output(args.csv, _csv(result))
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


def _evaluate_sets(detector, tuned, config: Config, found: dict, sets: dict, ood: dict, methods: list,
                   suite, conventions: list[str]) -> dict:
    """Score every folder, then every method's metrics per OOD set and their average, under each convention:
    methods -> method -> "sets" -> set -> convention -> metrics, and "average" -> convention -> metrics."""
    from .metrics import CONVENTIONS, MetricError, evaluate

    scored, info = {}, {}
    for key, paths in found.items():
        scored[key], skipped = _score_folder(detector, key, paths, tuned, config.finetune.combination)
        for message in skipped:
            _say(f"skipped {message}")
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


def _cmd_select(args: argparse.Namespace, config: Config) -> int:
    from .selection import select, write_selection

    _check_output(args.out)
    per_class = args.per_class or config.synthesis.per_class
    bar, progress = _bar("measuring")
    try:
        chosen, problems = select(args.train, per_class, progress)
    finally:
        bar.close()
    for problem in problems:
        _say(f"skipped {problem}")
    write_selection(args.out, chosen)
    classes = sorted({item.cls for item in chosen})
    known = len({item.cls for item in chosen if item.class_index is not None})
    _say(f"selected {len(chosen):,} images from {len(classes):,} classes ({known:,} matched to ImageNet classes), "
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

    from .generation import GenerationError, Parts, check_settings, generate, settings_record
    from .selection import read_selection

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
    suite, (labeller, generator, classifier, encoder) = _components(config, *ROLES_FOR_GENERATION)
    components = {role: part.info.name for role, part in zip(ROLES_FOR_GENERATION, (labeller, generator, classifier,
                                                                                     encoder))}
    expected = settings_record(args.selection, components, config.synthesis)
    try:
        if rank == 0:  # the first process records the settings, then every process checks them
            check_settings(out, expected)
        state.wait_for_everyone()
        if rank != 0:
            check_settings(out, expected)
    except GenerationError as exc:
        raise CommandError(str(exc)) from None
    _, detector = _detector(config, suite)
    parts = Parts(generator, classifier, labeller, detector)
    store = _store(config) if rank == 0 else None  # the first process records the run for all of them
    if store:
        run = store.create("generate", config.to_dict("models", "neglabel", "synthesis"),
                           {"selection": args.selection, "out": str(out), "items": len(items), "processes": world,
                            "components": components})
    start = time.perf_counter()
    with store.recording(run.id) if store else contextlib.nullcontext():
        counts = generate(items, out, parts, config.synthesis, rank, world, log=_say)
    _say(f"[{rank}] generated {counts['generated']}, skipped {counts['skipped']} finished before, "
         f"{counts['failed']} failed, in {time.perf_counter() - start:.1f} s; "
         f"{out / 'manifest.jsonl'} lists {counts['merged']} of {len(items)} items")
    state.wait_for_everyone()
    if store:
        from .manifest import MANIFEST, Manifest

        merged = len(Manifest(out).done() & {item.id for item in items})
        store.update(run.id, status="completed" if merged == len(items) else "failed",
                     summary={"merged": merged, "items": len(items), **{f"rank0_{k}": v for k, v in counts.items()}},
                     artifacts={"manifest": str(out / MANIFEST)},
                     message="" if merged == len(items) else f"{len(items) - merged} items not generated")
    return 1 if counts["failed"] else 0


def _finetune_flags(args: argparse.Namespace, config: Config) -> None:
    """Apply finetune's dedicated flags, before any model loads (the config checks each value when set)."""
    if args.synthetic_images is not None:
        config.finetune.synthetic_images = args.synthetic_images
    if args.joint:
        config.negtune.joint = True
    if args.stage3_projection:
        config.negtune.use_projection = True


def _cmd_finetune(args: argparse.Namespace, config: Config) -> int:
    from . import training

    store = _store(config)
    if args.resume:
        run = store.get(args.resume)
        config = training.resume_config(run, config.paths.home)
        generation = run.inputs["generation"]
    else:
        if not args.generation:
            raise CommandError("give --generation DIR (a `synood generate` folder) or --resume RUN")
        _finetune_flags(args, config)
        generation = args.generation
    from .pairs import PairsError, load_manifest

    try:
        load_manifest(generation)  # a wrong folder fails before any model loads
    except PairsError as exc:
        raise CommandError(str(exc)) from None
    suite, detector = _detector(config)
    bar, progress = _bar("image features")
    try:
        data = training.training_data(generation, detector, config, progress)
    except training.TrainingError as exc:
        raise CommandError(str(exc)) from None
    finally:
        bar.close()
    for problem in data.info["skipped"]:
        _say(f"skipped {problem}")
    info = data.info
    if not args.resume:
        run = training.start(store, config, generation, data, suite.name)
    _say(f"run {run.id}: {info['synthetic']:,} synthetic and {info['id']:,} ID images, {info['negatives_used']:,} of "
         f"{info['negatives_count']:,} negatives paired; stages "
         + ", ".join(f"{stage} x{epochs}" for stage, epochs in training.plan(config)))
    _say(f"conventions: {training.conventions(config)}")

    def report(epoch) -> None:
        _say(f"[{run.id}] {epoch.stage} epoch {epoch.epoch}: loss {epoch.loss:.4f}, accuracy {epoch.accuracy:.3f}, "
             f"lr {epoch.lr:.2e}")

    try:
        run = training.execute(store, run, data, config, on_epoch=report)
    except training.TrainingError as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps({"run": run.id, "status": run.status, "detector": run.artifacts.get("detector"),
                      "summary": run.summary}, indent=2) if args.json else
          f"run {run.id} {run.status}; detector: {run.artifacts.get('detector')}")
    return 0 if run.status == "completed" else 1


def _cmd_runs(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synood", description="SynOOD Explorer: near-boundary OOD "
                                     "synthesis and CLIP-based OOD detection.")
    parser.add_argument("--version", action="version", version=f"synood {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("mine", help="mine NegLabel's negative labels (NegMining) and write them as TSV or JSON")
    add_config_args(p)
    p.add_argument("--out", default="-", metavar="PATH", help="output file, or - for stdout (default)")
    p.add_argument("--format", choices=("tsv", "json"), help="default: json for a .json --out, else tsv")
    p.set_defaults(func=_cmd_mine)

    p = sub.add_parser("score", help="score images with NegLabel, MCM, MSP and Energy; show their nearest labels")
    add_config_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=_positive, default=5, metavar="K", help="ID and negative labels to show (5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_score)

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

    p = sub.add_parser("select", help="pick the ID images to synthesise from: per class, the most file bytes per pixel")
    add_config_args(p)
    p.add_argument("--train", required=True, metavar="DIR", help="training folder, one sub-folder of images per class")
    p.add_argument("--per-class", type=_positive, metavar="K", help="images kept per class (default synthesis.per_class, 50)")
    p.add_argument("--out", default="selection.jsonl", metavar="FILE", help="selection file (default selection.jsonl)")
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("generate", help="synthesise near-boundary images for a selection; resumable, and sharded "
                                        "over processes under `accelerate launch`")
    add_config_args(p)
    p.add_argument("--selection", required=True, metavar="FILE", help="from `synood select`")
    p.add_argument("--out", required=True, metavar="DIR", help="generation folder: images/ and manifest.jsonl")
    p.add_argument("--limit", type=_positive, metavar="N", help="only the first N items of the selection")
    p.add_argument("--iterations", type=_positive, help="noise-optimisation iterations (default 3)")
    p.add_argument("--loss", help="squared (default, the reference code's), hinge, or energy (paper eq. 7)")
    p.add_argument("--gradient", help="skip (default) or full (backpropagate through every denoising step)")
    p.add_argument("--step-size", type=float, help="noise step r*rho (default: the generator's own, 10 for SD2)")
    p.add_argument("--seed", type=int, help="base seed; each item's seed derives from it and the item (default 0)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("finetune", help="stages 2 and 3 on a generation: train the projection and the negative "
                                        "labels' features; every epoch is recorded and resumable")
    add_config_args(p)
    p.add_argument("--generation", metavar="DIR", help="a `synood generate` folder (or its manifest.jsonl)")
    p.add_argument("--synthetic-images", type=_positive, metavar="M",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        return args.func(args, config)
    except (ConfigError, suites.ModelUnavailableError, CommandError, images.ImageError,
            WordNetUnavailableError, RunError) as exc:
        print(f"synood: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder it may not write: one line; the run database says the rest
        print(f"synood: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
