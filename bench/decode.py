"""Feeding the models (issue 16, item 5): decoding in DataLoader workers, and batched classifier passes.

Two image sets, each the packaged photos (synood.data.photos) repeated to --images files:
- "as shipped": the photos' own files (PNG and JPEG, 512 px up to 5312 x 2988);
- "ImageNet-size": the same photos re-saved as JPEG (quality 90) with the longer side at most 500 px, the size of
  ImageNet and the MOS/OpenOOD test sets.
Each figure is the best of --runs rounds; a round runs every way once, in an order rotated each round (the machine is
shared, so a burst of load falls on different ways). Part 1, decode + preprocess throughput (images/s, and CPU
milliseconds per image with the workers' included, which the other jobs' load disturbs less): the plain loop as `cached_rows` ran it before
(images.load_image then the preprocessing, one image after another in this process) beside synood.data.loading.batches
with workers 0, 1, 2 (and 4, 8 where the machine has the cores), for the two preprocessings the caches use: the
classifier's `to_tensor` (full-size float RGB; the view is computed on the model's device) and open_clip's ViT-B-16
transform (resize, crop, normalise to 224 x 224: the encoder side).
Part 2, the classifier (the offline suite's EfficientNet-Lite0, CPU float32), on tensors decoded beforehand:
milliseconds per image one image at a time (synood/data/logits.py `forward` before) beside batched (the batch's
images grouped by shape, `ImageNetClassifier.batch_logits`), in batches of 32, and the largest difference of the
logits; then the network alone on 32 views passed k at a time, the figures that set CPU_PASS. Part 3: `classifier_logits` end to end on a cold cache, the plain loop (serial decode, one image at a time)
beside workers 0 and 2 with batched passes.

    .venv/bin/python bench/decode.py [--images 215] [--runs 3]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import open_clip  # noqa: E402

from synood.data import images, loading, photos  # noqa: E402
from synood.data.logits import classifier_logits, forward_groups  # noqa: E402
from synood.models import efficientnet  # noqa: E402
from synood.models.classifier import CPU_PASS, ImageNetClassifier  # noqa: E402

BATCH = 32
SMALL_SIDE = 500


def image_sets(folder: Path, count: int) -> dict[str, list[Path]]:
    """The packaged photos as shipped and re-saved at ImageNet size, each repeated to `count` paths."""
    shipped = [p.path for p in photos.photos()]
    small = []
    for path in shipped:
        picture = images.load_image(path)
        picture.thumbnail((SMALL_SIDE, SMALL_SIDE))
        small.append(folder / f"{path.stem}.jpg")
        picture.save(small[-1], quality=90)
    return {name: (paths * (count // len(paths) + 1))[:count] for name, paths in
            (("as shipped", shipped), ("ImageNet-size", small))}


def plain_loop(paths: list[Path], prepare: loading.Prepare) -> None:
    """The old way: decode and preprocess one image after another in this process (nothing kept)."""
    for path in paths:
        prepare(images.load_image(path))


def loader(paths: list[Path], prepare: loading.Prepare, workers: int) -> None:
    """The same images through loading.batches with `workers` processes."""
    with contextlib.closing(loading.batches(paths, prepare, BATCH, workers)) as batches:
        for _ in batches:
            pass


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (DataLoader workers are joined when a loader ends)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rounds(ways: list[Callable[[], object]], runs: int) -> list[tuple[float, float]]:
    """(best wall s, least CPU s) of each way over `runs` rounds; every round runs every way once, in an order
    rotated by one each round, so a burst of load from other jobs falls on different ways."""
    best = [(float("inf"), float("inf"))] * len(ways)
    for r in range(runs):
        for i in [(r + k) % len(ways) for k in range(len(ways))]:
            wall, cpu = time.perf_counter(), cpu_seconds()
            ways[i]()
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
    return best


def throughput(paths: list[Path], prepare: loading.Prepare, worker_counts: list[int],
               runs: int) -> list[tuple[float, float]]:
    """(images/s, CPU ms per image): the plain loop, then loading.batches with each worker count."""
    ways: list[Callable[[], object]] = [lambda: plain_loop(paths, prepare)]
    ways += [lambda w=w: loader(paths, prepare, w) for w in worker_counts]
    return [(len(paths) / wall, 1000 * cpu / len(paths)) for wall, cpu in rounds(ways, runs)]


def classifier_costs(net: ImageNetClassifier, paths: list[Path], runs: int) -> tuple[float, float, float]:
    """(ms per image one at a time, ms per image batched, largest |logit difference|) on pre-decoded tensors."""
    tensors = [net.to_tensor(images.load_image(path)) for path in paths]
    chunks = [loading.group_rows([(t, "") for t in tensors[i:i + BATCH]]) for i in range(0, len(tensors), BATCH)]
    found: list[torch.Tensor] = []

    def alone() -> None:
        found.append(torch.cat([net.logits(t[None]) for t in tensors]))

    def batched() -> None:
        found.append(torch.cat([forward_groups(net, c.groups)[torch.tensor(c.order).argsort()] for c in chunks]))

    with torch.no_grad():
        (alone_s, _), (batched_s, _) = rounds([alone, batched], runs)
    return 1000 * alone_s / len(paths), 1000 * batched_s / len(paths), float((found[0] - found[1]).abs().max())


def pass_sizes(net: ImageNetClassifier, sizes: list[int], runs: int) -> list[float]:
    """Network-only ms per image for 32 random crop x crop views passed `size` at a time (what CPU_PASS sets)."""
    views = torch.randn(BATCH, 3, net.view.crop, net.view.crop, generator=torch.Generator().manual_seed(0))

    def run(size: int) -> None:
        for chunk in views.split(size):
            net.head(net.pooled(chunk))

    with torch.no_grad():
        return [1000 * wall / BATCH for wall, _ in rounds([lambda s=s: run(s) for s in sizes], runs)]


def end_to_end(net: ImageNetClassifier, paths: list[Path], folder: Path, runs: int) -> list[float]:
    """Best seconds of classifier_logits on a cold cache (a fresh folder each call): the old loop (serial decode,
    one image at a time), then workers 0 and 2 with batched passes."""
    fresh = iter(range(1_000_000))

    def old() -> None:
        with torch.no_grad():
            for path in paths:
                net.logits(net.to_tensor(images.load_image(path))[None])

    ways: list[Callable[[], object]] = [old]
    ways += [lambda w=w: classifier_logits(net, paths, root=folder / f"cold-{next(fresh)}", workers=w) for w in (0, 2)]
    return [wall for wall, _ in rounds(ways, runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=215, help="paths per set (the photos repeated)")
    parser.add_argument("--runs", type=int, default=3, help="rounds; each way's best is reported")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    worker_counts = [w for w in (0, 1, 2, 4, 8) if w <= max(2, cores)]
    net = efficientnet.packaged(torch.device("cpu"), torch.float32)
    clip_transform = open_clip.image_transform(224, is_train=False)
    print(f"{cores} cores; default_workers() = {loading.default_workers()}; torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = image_sets(Path(tmp), args.images)
        header = " | ".join(["plain loop"] + [f"workers={w}" for w in worker_counts])
        print(f"\n1. decode + preprocess: images/s (CPU ms per image, workers included), best of {args.runs} rounds\n"
              f"| set | preprocessing | {header} |")
        for name, paths in sets.items():
            for label, prepare in (("classifier to_tensor", net.to_tensor), ("open_clip 224 transform", clip_transform)):
                rates = throughput(paths, prepare, worker_counts, args.runs)
                print(f"| {name} ({len(paths)}) | {label} | " + " | ".join(f"{r:.1f} ({c:.1f})" for r, c in rates) + " |")
        print(f"\n2. EfficientNet-Lite0 on CPU, ms per image (batches of {BATCH}, best of {args.runs} rounds)\n"
              "| set | one at a time | batched | speed-up | max abs logit difference |")
        for name, paths in sets.items():
            distinct = list(dict.fromkeys(paths))
            alone, batched, diff = classifier_costs(net, distinct, args.runs)
            print(f"| {name} ({len(distinct)} distinct) | {alone:.1f} | {batched:.1f} | {alone / batched:.2f}x | "
                  f"{diff:.1e} |")
        sizes = [1, 2, 4, 8, 16, 32]
        print(f"\nEfficientNet-Lite0 network only (views passed k at a time; CPU_PASS = {CPU_PASS}), ms per image\n"
              "| " + " | ".join(f"k={k}" for k in sizes) + " |\n| "
              + " | ".join(f"{ms:.1f}" for ms in pass_sizes(net, sizes, args.runs)) + " |")
        print(f"\n3. classifier_logits on a cold cache, seconds (best of {args.runs} rounds)\n"
              "| set | plain loop | workers=0, batched | workers=2, batched |")
        for name, paths in sets.items():
            distinct = list(dict.fromkeys(paths))
            times = end_to_end(net, distinct, Path(tmp) / name.replace(" ", "-"), args.runs)
            print(f"| {name} ({len(distinct)} distinct) | " + " | ".join(f"{t:.1f}" for t in times) + " |")


if __name__ == "__main__":
    main()
