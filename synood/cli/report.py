"""`synood report`: one self-contained HTML page for a recorded run (evaluate, generate or finetune)."""
from __future__ import annotations

import argparse

from synood.config import Config
from synood.cli.common import CommandError, add_config_args, check_output, positive, run_store, say, write_output


def _cmd_report(args: argparse.Namespace, config: Config) -> int:
    from synood.pipelines.report import html

    if args.out != "-" and not args.out.lower().endswith((".html", ".htm")):
        raise CommandError(f"--out {args.out}: give an .html file (or - for stdout)")
    check_output(args.out)
    store = run_store(config)
    run = store.get(args.run)
    page = html(run, store, pairs=args.pairs, cases=args.cases)
    write_output(args.out, page)
    if args.out != "-":
        say(f"wrote the report of {run.kind} run {run.id} to {args.out} ({len(page.encode()) / 2**20:.1f} MB)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The report sub-command."""
    p = sub.add_parser("report", help="one self-contained HTML page for a run: its tables, plots, thumbnails, "
                                      "settings and models; it opens offline in any browser")
    add_config_args(p)
    p.add_argument("run", metavar="RUN", help="a run id (`synood runs` lists them)")
    p.add_argument("--out", required=True, metavar="FILE.html", help="the page to write (- for stdout)")
    p.add_argument("--pairs", type=positive, default=24, metavar="N",
                   help="a generation's pairs shown (default 24)")
    p.add_argument("--cases", type=positive, default=6, metavar="K",
                   help="an evaluation's hardest cases per score and side (default 6)")
    p.set_defaults(func=_cmd_report)
