"""`synood metrics`: the metric table of `synood evaluate` from per-image score files (ours or OpenOOD's)."""
from __future__ import annotations

import argparse

from synood.config import Config
from synood.cli.common import CommandError, add_config_args, check_output
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
    groups = _groups(args.benchmark, list(found.sets))
    methods = methods_of(sets, titles, conventions, found.id_set, args.bootstrap, args.seed, groups)
    result = Evaluation(found.id_set, sets, methods, conventions,
                        bootstrap={"resamples": args.bootstrap, "seed": args.seed} if args.bootstrap else None,
                        groups=groups)
    show(result.to_dict(), args)
    return 0


def _groups(name: str | None, sets: list[str]) -> dict[str, list[str]]:
    """The group averages (near, far) of the protocol `name`, or of the protocol whose sets the folder holds."""
    from synood.data import benchmarks

    if name is None:
        protocol = benchmarks.matching(sets)
        return protocol.grouped() if protocol else {}
    protocol = benchmarks.benchmark(name)
    absent = [s.name for s in protocol.sets if s.name not in sets]
    if absent:
        raise CommandError(f"--benchmark {name}: the score folder has no scores for {', '.join(absent)}")
    return protocol.grouped()


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The metrics sub-command."""
    p = sub.add_parser("metrics", help="the metric table of `synood evaluate` from a folder of per-image score "
                                       "files (`evaluate --export-scores`, or OpenOOD's scores/*.npz)")
    add_config_args(p)
    p.add_argument("--scores", required=True, metavar="DIR",
                   help="a folder of OpenOOD-form score files: <score>/scores/<set>.npz per score (as `synood "
                        "evaluate --export-scores` writes), or one OpenOOD output folder or its scores/; the ID set "
                        "is the file whose labels hold no -1, as in OpenOOD")
    p.add_argument("--benchmark", metavar="NAME",
                   help="report the group averages (near, far) of this protocol (openood-v1.5); by default those of "
                        "the protocol whose sets the folder holds exactly, if any")
    add_output_args(p)
    p.set_defaults(func=_cmd_metrics)
