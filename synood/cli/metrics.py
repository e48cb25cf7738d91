"""`synood metrics`: the metric table of `synood evaluate` from per-image score files (ours or OpenOOD's)."""
from __future__ import annotations

import argparse

from synood.config import Config
from synood.cli.common import add_config_args, check_output
from synood.cli.evaluate import add_output_args, check_bootstrap, conventions_of, show


def _cmd_metrics(args: argparse.Namespace, config: Config) -> int:
    import torch

    from synood.data import scorefiles
    from synood.method.scorers import SCORERS
    from synood.pipelines.evaluation import Evaluation, ScoredSet, methods_of

    conventions = conventions_of(args.convention)
    check_bootstrap(args)
    check_output(args.csv)
    found = scorefiles.read(args.scores)
    first = next(iter(found.files.values()))
    sets = {name: ScoredSet(str(first[name]), [], [], {score: torch.as_tensor(by_set[name])
                                                       for score, by_set in found.scores.items()})
            for name in found.sets}
    titles = {score: SCORERS[score].title if score in SCORERS else score for score in found.scores}
    methods = methods_of(sets, titles, conventions, found.id_set, args.bootstrap, args.seed)
    result = Evaluation(found.id_set, sets, methods, conventions,
                        bootstrap={"resamples": args.bootstrap, "seed": args.seed} if args.bootstrap else None)
    show(result.to_dict(), args)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The metrics sub-command."""
    p = sub.add_parser("metrics", help="the metric table of `synood evaluate` from a folder of per-image score "
                                       "files (`evaluate --export-scores`, or OpenOOD's scores/*.npz)")
    add_config_args(p)
    p.add_argument("--scores", required=True, metavar="DIR",
                   help="a folder of OpenOOD-form score files: <score>/scores/<set>.npz per score (as `synood "
                        "evaluate --export-scores` writes), or one OpenOOD output folder or its scores/; the ID set "
                        "is the file whose labels hold no -1, as in OpenOOD")
    add_output_args(p)
    p.set_defaults(func=_cmd_metrics)
