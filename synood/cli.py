"""The `synood` command line. Every subcommand calls the same library functions as the app."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from . import __version__
from .config import Config, ConfigError, load_config
from .models import suites
from .models.interfaces import ROLE_TITLES, ROLES

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
    """Defaults < --config file < --set < dedicated flags."""
    overrides = list(args.set)
    for key in MODEL_FLAGS.values():
        value = getattr(args, f"models_{key}")
        if value is not None:
            overrides.append(f"models.{key}={json.dumps(value)}")
    return load_config(args.config, overrides)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        return args.func(args, config)
    except (ConfigError, suites.ModelUnavailableError) as exc:
        print(f"synood: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
