"""`synood mine` and `synood score`: NegLabel's negative labels, and the scores of single images."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Sequence

from synood.config import Config
from synood.data import images
from synood.cli.common import (StageBars, add_config_args, check_output, open_suite,
                               make_detector, positive, say, write_output)


def _top(similarities, names: Sequence[str], k: int) -> list[dict]:
    values, indices = similarities.topk(min(k, len(names)))
    return [{"label": names[i], "similarity": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist())]


def _cmd_mine(args: argparse.Namespace, config: Config) -> int:
    from synood.pipelines import mining

    fmt = args.format or ("json" if args.out.endswith(".json") else "tsv")
    check_output(args.out)
    from synood.pipelines.detect import IMAGENET_CLASSNAMES  # torch and open_clip: after the checks that fail fast

    suite = open_suite(config)
    encoder = suite.get("encoder", progress=say)
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
    write_output(args.out, text)
    counts = ", ".join(f"{sum(r['pos'] == pos for r in rows):,} {pos}" for pos in mining.POS_ORDER)
    n = config.neglabel
    say(f"mined {len(rows):,} negative labels ({counts}) with the {suite.name} suite's encoder over "
        f"{len(IMAGENET_CLASSNAMES)} ID labels in {seconds:.1f} s; percentile {n.percentile:g}, "
        f"keep_ratio {n.keep_ratio:g}, prune_csp {str(n.prune_csp).lower()}"
        + ("" if args.out == "-" else f"; written to {args.out}"))
    return 0


def _cmd_score(args: argparse.Namespace, config: Config) -> int:
    from synood.data.classnames import display_names, distinct
    from synood.method.scorers import SCORERS, standard

    loaded, failed = {}, []
    for path in args.images:
        try:
            loaded[path] = images.load_image(path)
        except images.ImageError as exc:
            failed.append({"image": path, "error": str(exc)})
            print(f"synood: error: {exc}", file=sys.stderr)
    results = []
    if loaded:
        suite, detector = make_detector(config)
        pictures = list(loaded.values())
        scores = detector.score(pictures)
        features = scores["features"]
        id_sims, neg_sims = features @ detector.id_features.T, features @ detector.negative_features.T
        id_names = display_names(detector.id_names)
        negative_names = distinct([label.word for label in detector.negatives],
                                  [label.pos for label in detector.negatives])
        for i, path in enumerate(loaded):
            results.append({"image": path, "scores": {name: float(scores[name][i]) for name in standard()},
                            "top_id": _top(id_sims[i], id_names, args.top),
                            "top_negative": _top(neg_sims[i], negative_names, args.top)})
    if args.json:
        print(json.dumps({"suite": suite.name if loaded else None, "images": results, "errors": failed}, indent=2))
        return 1 if failed else 0
    for r in results:
        print(r["image"])
        print("  scores     " + "  ".join(f"{SCORERS[k].title} {v:.4f}" for k, v in r["scores"].items()))
        for key, title in (("top_id", "ID labels"), ("top_negative", "negatives")):
            print(f"  {title:<10} " + ", ".join(f"{t['label']} {t['similarity']:.3f}" for t in r[key]))
    return 1 if failed else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The mine and score sub-commands."""
    p = sub.add_parser("mine", help="mine NegLabel's negative labels (NegMining) and write them as TSV or JSON")
    add_config_args(p)
    p.add_argument("--out", default="-", metavar="PATH", help="output file, or - for stdout (default)")
    p.add_argument("--format", choices=("tsv", "json"), help="default: json for a .json --out, else tsv")
    p.set_defaults(func=_cmd_mine)

    p = sub.add_parser("score", help="score images with every registered score that needs no detector file (NegLabel, MCM, "
                                        "MSP, Energy...); show their nearest labels")
    add_config_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=positive, default=5, metavar="K", help="ID and negative labels to show (5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_score)
