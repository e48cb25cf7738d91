"""A long seeded fuzz of synood.data.images.load_image, and its cost beside the plain way of loading an image.

Each case flips, cuts or inserts bytes (half of them within the first 64) in one of the small valid seeds of
bench/common/image_seeds.py (PNG, JPEG, GIF, WebP, TIFF, BMP and variants) under the default limits (config section
`images`), and records what load_image did: loaded as RGB, refused with an ImageError (counted per kind of
message), or anything else (a bug: there should be none); beside it, what the plain way,
`Image.open(p).convert("RGB")`, raises on the same cases. Then the two are timed on the valid seeds and the
packaged photos.
Run: .venv/bin/python bench/fuzz_images.py [--cases 5000] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from PIL import Image  # noqa: E402

from bench.common.image_seeds import mutate, seed_files  # noqa: E402
from bench.timing import best_of  # noqa: E402
from synood.data import images, photos  # noqa: E402
from synood.config import ImagesConfig  # noqa: E402

SUFFIXES = (".png", ".jpg", ".gif", ".webp", ".tif", ".bmp")
ROUNDS = 10
HEADER = 64  # half the cases damage the first bytes, where the format, the size and the layout are


def kind_of(message: str, path: Path) -> str:
    """The message without the file's name and the per-file details: what is counted."""
    text = message.removeprefix(f"{path}: ")
    limit = re.search(r"\(images\.(\w+);", text)
    if limit:
        return f"over the limit images.{limit[1]}"
    cause = re.match(r"(truncated or corrupt image data) \((\w+):", text)
    if cause:
        return f"{cause[1]} ({cause[2]})"
    return text.split(" (")[0]


def fuzz(cases: int, seed: int, folder: Path) -> None:
    seeds = seed_files()
    names = sorted(seeds)
    rng = random.Random(seed)
    outcomes, examples, others, plain = Counter(), {}, [], Counter()
    slowest = (0.0, "")
    for case in range(cases):
        name, kind = rng.choice(names), rng.choice(("flip", "cut", "insert"))
        position = rng.randrange(HEADER) if rng.random() < 0.5 else rng.randrange(len(seeds[name]) + 1)
        data = mutate(seeds[name], kind, position, rng.randbytes(rng.randint(1, 16)))
        path = folder / f"case{case}{rng.choice(SUFFIXES)}"
        path.write_bytes(data)
        start = time.perf_counter()
        try:
            images.load_image(path)
            outcome = "loaded as RGB"
        except images.ImageError as exc:
            outcome = f"refused: {kind_of(str(exc), path)}"
            examples.setdefault(outcome, str(exc).replace(str(path), f"case{path.suffix}"))
        except Exception:  # noqa: BLE001 -- what the fuzz looks for
            outcome = "OTHER EXCEPTION"
            others.append(f"case {case} ({name}, {kind}):\n{traceback.format_exc()}")
        seconds = time.perf_counter() - start
        if seconds > slowest[0]:
            slowest = (seconds, f"case {case}: {kind} of the {name} seed, {len(data):,} bytes, {outcome}")
        outcomes[outcome] += 1
        try:
            with Image.open(path) as image:
                image.convert("RGB")
            plain["loaded"] += 1
        except Exception as exc:  # noqa: BLE001 -- what the plain way lets through
            plain[type(exc).__name__] += 1
        path.unlink()
    print(f"cases tried: {cases:,} (seed {seed}; {len(names)} seed files: {', '.join(names)})")
    for outcome, count in sorted(outcomes.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {count:6,}  {outcome}" + (f"\n          e.g. {examples[outcome]}" if outcome in examples else ""))
    print(f"other exceptions: {len(others)}")
    for text in others[:5]:
        print(text)
    print(f"slowest case: {slowest[0] * 1000:.1f} ms ({slowest[1]})")
    print("the plain way, Image.open(p).convert('RGB'), on the same cases: "
          + ", ".join(f"{name} {count:,}" for name, count in plain.most_common()))


def reference(folder: Path) -> None:
    """load_image beside Image.open(p).convert("RGB") on the valid seeds and the packaged photos."""
    paths = []
    for name, data in seed_files().items():
        path = folder / f"seed.{name}"
        path.write_bytes(data)
        paths.append(path)
    groups = {"valid seeds (tiny files)": paths,
              "packaged photos": [p.path for p in photos.photos() if p.path.is_file()]}

    def plain(files):
        for path in files:
            with Image.open(path) as image:
                image.convert("RGB")

    def ours(files):
        for path in files:
            images.load_image(path)

    print(f"load_image vs the plain way, Image.open(p).convert('RGB') (best of {ROUNDS}, taken in turns):")
    for label, files in groups.items():
        plain_s = ours_s = float("inf")
        for _ in range(ROUNDS):
            plain_s = min(plain_s, best_of(lambda: plain(files), 1)[0])
            ours_s = min(ours_s, best_of(lambda: ours(files), 1)[0])
        print(f"  {label} ({len(files)} files): load_image {ours_s * 1000:.1f} ms, plain {plain_s * 1000:.1f} ms, "
              f"ratio {ours_s / plain_s:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images.set_limits(ImagesConfig())
    print(f"limits: {ImagesConfig()}")
    with tempfile.TemporaryDirectory(prefix="synood-fuzz-") as tmp:
        start = time.perf_counter()
        fuzz(args.cases, args.seed, Path(tmp))
        print(f"fuzz wall time: {time.perf_counter() - start:.1f} s")
        reference(Path(tmp))


if __name__ == "__main__":
    main()
