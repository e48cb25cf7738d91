"""The whole method on the offline suite through the real CLI: select -> generate -> finetune -> evaluate.

Half of the packaged ID photos are the training set (one synthetic image each); the other half and
the packaged OOD photos are the held-out evaluation. Two fine-tuning runs on the same generation:
the authors' conventions (today's defaults: raw embeddings, schedules stepped per epoch) and the
ones this project used before issue 14 (unit-norm inputs and parameters, per-batch schedules, floor
0). Each is evaluated under every metric convention, printed side by side. A demonstration on a few
dozen photos, not a benchmark: read it for the plumbing and the direction of the changes. Each run
is scored with each test-time combination (both tuned parts, the projection only, the negatives only).

    .venv/bin/python bench/end_to_end.py [--epochs 3,5] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synood.data import photos  # noqa: E402

SYNOOD = str(Path(sys.executable).with_name("synood"))
BEFORE = ["projection.input=unit", "negtune.parameter=unit", "projection.schedule=batch", "negtune.schedule=batch",
          "projection.eta_min=0"]
RUNS = {"authors' code (default)": [], "before issue 14": BEFORE}
COMBINATIONS = ("both", "projection", "negatives")  # finetune.combination: the tuned parts scored at test time
COLUMNS = [(metric, convention) for metric in ("fpr95", "aupr_in", "aupr_out")
           for convention in ("mos", "openood", "neglabel") if metric == "fpr95" or convention != "neglabel"]


def synood(*args: str) -> str:
    """Run the real entry point; its stdout (stderr is shown only when it fails)."""
    done = subprocess.run([SYNOOD, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"synood {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def folders(root: Path) -> tuple[Path, Path, Path]:
    """train/<class>/photo (every other ID photo), eval-id/ (the rest), eval-ood/ (every OOD photo), as copies."""
    train, held_id, held_ood = root / "train", root / "eval-id", root / "eval-ood"
    for index, photo in enumerate(photos.photos("id")):
        target = train / photo.subject if index % 2 == 0 else held_id
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo.path, target / f"{photo.name}{photo.path.suffix}")
    held_ood.mkdir(parents=True)
    for photo in photos.photos("ood"):
        shutil.copy(photo.path, held_ood / f"{photo.name}{photo.path.suffix}")
    return train, held_id, held_ood


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", default="3,5", help="stage 2 and stage 3 epochs (default 3,5: the paper's)")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one); a folder kept "
                                       "earlier is reused, its generation included")
    args = parser.parse_args()
    projection_epochs, negtune_epochs = (int(n) for n in args.epochs.split(","))
    root = Path(args.keep or tempfile.mkdtemp(prefix="synood-e2e-"))
    held_id, held_ood, manifest = root / "eval-id", root / "eval-ood", root / "gen" / "manifest.jsonl"
    started = time.perf_counter()
    if manifest.is_file():
        print(f"reusing the generation in {root} (kept by an earlier --keep)")
    else:
        train, held_id, held_ood = folders(root)
        synood("select", "--train", str(train), "--per-class", "1", "--out", str(root / "sel.jsonl"))
        synood("generate", "--suite", "offline", "--selection", str(root / "sel.jsonl"), "--out", str(root / "gen"))
        print(f"select + generate: {sum(1 for _ in manifest.open())} synthetic images in "
              f"{time.perf_counter() - started:.0f} s")
    epochs = [f"projection.epochs={projection_epochs}", f"negtune.epochs={negtune_epochs}"]
    rows: dict[str, dict] = {}
    for title, keys in RUNS.items():
        sets = [arg for key in [*epochs, *keys] for arg in ("--set", key)]
        run = json.loads(synood("finetune", "--suite", "offline", "--generation", str(root / "gen"), "--json", *sets))
        for combination in COMBINATIONS:
            report = json.loads(synood("evaluate", "--suite", "offline", "--id", str(held_id), "--ood",
                                       f"photos={held_ood}", "--checkpoint", run["run"], "--convention", "all",
                                       "--scores", "neglabel,synood", "--set", f"finetune.combination={combination}",
                                       "--json"))
            rows.setdefault("NegLabel (not tuned)", report["methods"]["neglabel"]["average"])
            rows[f"{title}: {combination}"] = report["methods"]["synood"]["average"]
    print(f"\nheld out: {len(list(held_id.iterdir()))} ID photos, {len(list(held_ood.iterdir()))} OOD photos; "
          f"epochs {projection_epochs} + {negtune_epochs}; values in %; AUROC is the same under every convention")
    header = "".join(f"{metric} {convention}".rjust(17) for metric, convention in COLUMNS)
    print(f"{'detector (fine-tuning conventions: test-time parts)':<52}{'AUROC':>7}{header}")
    for name, average in rows.items():
        print(f"{name:<52}{average['mos']['auroc']:>7.2f}"
              + "".join(f"{average[convention][metric]:>17.2f}" for metric, convention in COLUMNS))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; work folder {root}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
