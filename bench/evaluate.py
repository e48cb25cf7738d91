"""The evaluation engine's caches: a second `synood evaluate` of the same folders encodes nothing.

Runs the real entry point (`synood evaluate --suite offline --json`, a subprocess, HF_HUB_OFFLINE=1) on two
folders copied from the packaged photos (synood.data.photos: every "id" photo, every "ood" photo), under a fresh
SYNOOD_HOME in a temporary folder, three times in one run:
1. cold: the fresh home has no cache at all (the first run also encodes the ID prompts and, unless --mined-from
   gives a home whose mined negative labels are copied in, mines the ~82k WordNet prompts);
2. warm: the same command again;
3. the plain way: the same command after deleting only the image caches (image-features/, classifier-logits/),
   text caches kept, so every image is encoded and classified again as if there were no image cache.
Counts come from the cache folders' files, not from timing: the engine writes a safetensors chunk of (content
hash, row) pairs for each batch of images it computed (synood/data/features.py `cached_rows`) and nothing for a
cached image, so the rows of the chunk files a run added are the images it encoded (image-features/) and the
classifier passes it ran (classifier-logits/); text prompts encoded are the rows of the text-feature files it
added. The metrics of the three runs are compared too: the caches must not change a figure.

    .venv/bin/python bench/evaluate.py [--mined-from HOME] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import best_of  # noqa: E402
from synood.data import photos  # noqa: E402

SYNOOD = str(Path(sys.executable).with_name("synood"))
IMAGE_CACHES = ("image-features", "classifier-logits")  # the engine's content-keyed caches, one folder per model
COUNTED = {"image-features": "hashes", "classifier-logits": "hashes", "text-features": "features"}  # rows: tensor


def folders(root: Path) -> tuple[Path, Path]:
    """id/ (every packaged ID photo) and ood/ (every packaged OOD photo), as copies."""
    made = []
    for split in ("id", "ood"):
        folder = root / split
        folder.mkdir(parents=True)
        for photo in photos.photos(split):
            shutil.copy(photo.path, folder / f"{photo.name}{photo.path.suffix}")
        made.append(folder)
    return made[0], made[1]


def cache_files(home: Path) -> set[Path]:
    """Every cache file the counts read."""
    return {path for kind in COUNTED for path in (home / kind).rglob("*.safetensors")}


def rows_added(home: Path, before: set[Path]) -> dict[str, int]:
    """Rows of the cache files that are new since `before`, per cache kind: what a run computed."""
    added = dict.fromkeys(COUNTED, 0)
    for path in cache_files(home) - before:
        kind = path.relative_to(home).parts[0]
        with safe_open(str(path), "pt") as f:
            added[kind] += f.get_slice(COUNTED[kind]).get_shape()[0]
    return added


def evaluate(home: Path, id_folder: Path, ood_folder: Path) -> tuple[float, dict[str, int], dict]:
    """(wall seconds, rows computed per cache, the --json report) of one `synood evaluate`, process start to exit."""
    env = {**os.environ, "SYNOOD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    command = [SYNOOD, "evaluate", "--suite", "offline", "--id", str(id_folder), "--ood", f"photos={ood_folder}",
               "--json"]
    before = cache_files(home)
    wall, done = best_of(lambda: subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT), 1)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return wall, rows_added(home, before), json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mined-from", metavar="HOME",
                        help="copy this SYNOOD_HOME's mined negative labels (negative-labels/) into the fresh home, "
                             "so the cold run does not mine the WordNet prompts again; the image caches stay cold")
    parser.add_argument("--keep", metavar="DIR", help="work in this new folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synood-bench-evaluate-"))
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    if home.exists():
        sys.exit(f"{home} exists: the first run must start from an empty SYNOOD_HOME")
    id_folder, ood_folder = folders(root)
    if args.mined_from:
        shutil.copytree(Path(args.mined_from) / "negative-labels", home / "negative-labels")
    print(f"{len(photos.photos('id'))} ID and {len(photos.photos('ood'))} OOD photos; SYNOOD_HOME={home}"
          + (f" (mined negative labels copied from {args.mined_from})" if args.mined_from else " (empty)"))
    runs = {"1. cold: fresh SYNOOD_HOME": evaluate(home, id_folder, ood_folder),
            "2. warm: the same command again": evaluate(home, id_folder, ood_folder)}
    for kind in IMAGE_CACHES:
        shutil.rmtree(home / kind)
    runs["3. plain way: image caches deleted"] = evaluate(home, id_folder, ood_folder)
    first = next(iter(runs.values()))[2]["methods"]
    print("\n| run | wall | images encoded | classifier passes | text prompts encoded | metrics as run 1 |\n"
          "|---|---|---|---|---|---|")
    for title, (wall, added, report) in runs.items():
        print(f"| {title} | {wall:.1f} s | {added['image-features']} | {added['classifier-logits']} | "
              f"{added['text-features']:,} | {'yes' if report['methods'] == first else 'NO'} |")
    warm, plain = runs["2. warm: the same command again"][0], runs["3. plain way: image caches deleted"][0]
    print(f"\nwarm vs the plain way (every image encoded again): {plain / warm:.2f}x")
    if args.keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
