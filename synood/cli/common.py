"""What every sub-command shares: the config flags, progress bars on stderr, the loaded suite and detector,
the run database and output files."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from synood.config import Config, load_config
from synood.errors import UserError
from synood.data import images
from synood.models import suites

if TYPE_CHECKING:  # the detector imports open_clip and the text cache torch: only their types are needed here
    from synood.data.textcache import Progress
    from synood.pipelines.detect import Detector
    from synood.records.runs import RunStore


MODEL_FLAGS = {  # flag -> ModelsConfig field
    "--suite": "suite", "--encoder": "encoder", "--encoder-weights": "encoder_weights",
    "--classifier": "classifier", "--classifier-weights": "classifier_weights",
    "--generator": "generator", "--labeller": "labeller", "--device": "device", "--dtype": "dtype",
    "--memory-limit": "memory_limit", "--offload": "offload",
}
MODEL_SWITCHES = {"--offload"}  # flags that take no value: present means true

FLAG_HELP = {
    "--suite": f"model suite: {', '.join(suites.SUITE_CHOICES)} (default auto)",
    "--encoder": "open_clip architecture, e.g. ViT-B-16-quickgelu",
    "--encoder-weights": "open_clip pretrained tag (openai), hf-hub:org/repo, or a checkpoint file",
    "--classifier": "torchvision architecture, e.g. resnet50",
    "--classifier-weights": "torchvision weights name (IMAGENET1K_V2) or a .pth/.safetensors file",
    "--generator": "diffusers inpainting hub id or local folder",
    "--labeller": "transformers image-text-to-text hub id or local folder (e.g. a LLaVA-1.5 copy)",
    "--device": "auto (CUDA if present, else CPU), cpu, cuda or cuda:N",
    "--dtype": "auto (float16 for the generator and labeller on CUDA; on CPU float32, or bfloat16 where only that "
               "fits), float32, float16 or bfloat16",
    "--memory-limit": "refuse to load a component whose estimated memory exceeds this (e.g. 8GB; default: what is "
                      "free)",
    "--offload": "on CUDA, keep the generator's and labeller's weights in CPU RAM and move them to the GPU as used "
                 "(fits 8-12 GB GPUs; no effect on CPU)",
}

def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The flags that build a Config: a YAML file, --set overrides and the model flags."""
    parser.add_argument("--config", metavar="FILE", help="YAML file with config sections (see `synood config`)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="override one config value; repeatable")
    for flag, key in MODEL_FLAGS.items():
        if flag in MODEL_SWITCHES:
            parser.add_argument(flag, dest=f"models_{key}", action="store_const", const=True, help=FLAG_HELP[flag])
        else:
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


class CommandError(UserError):
    """Bad input to a sub-command: printed as "synood: error: ..." with exit status 2."""


class StageBars:
    """A (stage, done, total) progress callback (textcache.StageProgress) drawn as one tqdm bar per named stage
    on stderr: counted stages in `unit`s, single steps (total 1) as one step."""

    def __init__(self, unit: str = "prompt"):
        self.unit = unit
        self.bar: tqdm | None = None
        self.stage: str | None = None

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


def image_bar(desc: str) -> tuple[tqdm, Progress]:
    """An image-counting bar on stderr and the (done, total) callback that drives it."""
    bar = tqdm(desc=desc, unit="image", file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_suite(config: Config) -> suites.Suite:
    """The configured suite, its notice and name said on stderr; components load on first `get`."""
    suite = suites.Suite.from_config(config.models)
    if suite.notice:
        say(f"notice: {suite.notice}")
    say(f"suite: {suite.name} ({suite.spec.title})")
    return suite


def make_detector(config: Config, suite: suites.Suite | None = None) -> tuple[suites.Suite, Detector]:
    """The suite (the configured one unless given) and a Detector on its encoder and classifier."""
    from synood.pipelines.detect import Detector

    if suite is None:
        suite = open_suite(config)
    classifier, encoder = suite.get("classifier", progress=say), suite.get("encoder", progress=say)
    bars = StageBars()
    try:
        return suite, Detector(encoder, classifier, config.neglabel, progress=bars)
    finally:
        bars.close()


def check_output(path: str | None) -> None:
    """Fail before any long work when an output file's folder does not exist."""
    if path and path != "-" and not Path(path).parent.is_dir():
        raise CommandError(f"cannot write {path}: no such folder {Path(path).parent}")


def write_output(path: str, text: str) -> None:
    """Text to stdout for "-", else atomically to the file."""
    if path == "-":
        sys.stdout.write(text)
    else:
        from synood.data import storage

        storage.write_text(path, text)


def run_store(config: Config) -> RunStore:
    from synood.records.runs import store_for

    return store_for(config.paths.home)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value
