"""First use of the offline suite (issue 13): each figure beside today's way (a commit, --baseline) in one run.

Today's way runs from a copy of the baseline commit's tree (`git archive REF`, put first on PYTHONPATH; default
HEAD, and 6472f02 is the code before issue 13); ours from the work tree.
Both share one SYNOOD_HOME, so the text-feature cache (keyed by encoder and texts, the same in both) is warm for
both; ours also has its cache of mined negative labels, written by its first run (not timed: "warm" means every
cache exists, as after `make run`'s mining step or any earlier use).
1. `synood score PHOTO` wall time, process start to exit (best of N);
2. `synood mine --out -` wall time (best of N);
3. the app's first score after a restart: a fresh process builds the app's pieces as app.py does (the suite, the
   shared DetectorHolder), then times what the Score button runs, DetectorHolder.get(progress) plus scoring one
   photo, and records every progress message with its time (the stage names the tab shows);
4. --cold: `synood score PHOTO` with an empty SYNOOD_HOME for ours (today's way: the issue's 320 s; a second
   cold run of today's code costs as long again and is left out unless --cold-both);
5. --quantised: all-MiniLM-L6-v2 fp32 vs int8 dynamic quantisation (torch.ao quantize_dynamic on every Linear, per
   tensor and per channel) on every 40th WordNet candidate: texts/s, the largest feature difference, and the
   overlap of the negatives mined from that pool.
Run: SYNOOD_HOME=/path/to/warm/home .venv/bin/python bench/first_score.py [--runs N] [--cold] [--quantised]
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_FIRST_SCORE = r"""
import sys, time
import gradio as gr  # imported by the app at start-up, before any click
from synood.config import load_config
from synood.models import Suite
from synood.data.photos import by_name
from ui.detector import DetectorHolder
config = load_config(overrides=["models.suite=offline"])
holder = DetectorHolder.shared(Suite.from_config(config.models), config)
from PIL import Image
image = Image.open(by_name("cat").path)
seen = []
start = time.perf_counter()
def progress(fraction, desc=None, **kwargs):
    if desc and (not seen or seen[-1][1] != desc.split(":")[0]):
        seen.append((time.perf_counter() - start, desc.split(":")[0]))
detector = holder.get(progress)
detector.score([image])
print(f"TOTAL {time.perf_counter() - start:.2f}")
for at, desc in seen:
    print(f"STAGE {at:.2f} {desc}")
"""


def head_tree(ref: str = "HEAD") -> Path:
    """The files of commit `ref` in a temporary folder: today's code."""
    folder = Path(tempfile.mkdtemp(prefix="synood-head-"))
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(folder)
    return folder


def run(tree: Path, args: list[str], env: dict) -> tuple[float, str]:
    """Wall time of `python args...` with `tree` first on the import path, and its stdout; fails loudly."""
    env = {**env, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} in {tree} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def best(tree: Path, args: list[str], env: dict, runs: int) -> float:
    return min(run(tree, args, env)[0] for _ in range(runs))


def app_first_score(tree: Path, env: dict) -> tuple[float, list[str]]:
    _, out = run(tree, ["-c", APP_FIRST_SCORE], env)
    lines = out.splitlines()
    total = float(next(line.split()[1] for line in lines if line.startswith("TOTAL")))
    return total, [line[len("STAGE "):] for line in lines if line.startswith("STAGE")]


def quantised(sample_every: int = 40) -> None:
    """fp32 vs int8 dynamic quantisation of the sentence encoder on a sample of the WordNet pool."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from synood.pipelines import mining
    from synood.data import wordnet
    from synood.models import minilm
    from synood.data.textcache import encode_in_batches

    warnings.filterwarnings("ignore")
    from open_clip import IMAGENET_CLASSNAMES

    pool = {pos: wordnet.candidates(pos)[::sample_every] for pos in mining.POS_ORDER}
    config = mining.NegLabelConfig()
    texts = (mining.prompts(IMAGENET_CLASSNAMES, config.id_template)
             + mining.prompts([c.word for c in pool["noun"]], config.noun_template)
             + mining.prompts([c.word for c in pool["adj"]], config.adjective_template))
    encoder = minilm.SentenceEncoder(minilm.packaged_folder(), torch.device("cpu"))
    fp32 = encoder.model
    variants = {"fp32": fp32,
                "int8 per tensor": quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8),
                "int8 per channel": quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                                     dtype=torch.qint8)}
    results = {}
    for name, model in variants.items():
        encoder.model = model
        start = time.perf_counter()
        features = encode_in_batches(encoder.encode, texts)
        seconds = time.perf_counter() - start
        table = dict(zip(texts, features))
        labels, _ = mining.mine(lambda batch, progress=None, normalize=True: torch.stack([table[t] for t in batch]),
                                IMAGENET_CLASSNAMES, config, pool=pool)
        results[name] = (len(texts) / seconds, features, {(label.word, label.pos) for label in labels})
    rate, reference, kept = results["fp32"]
    print(f"\n## Sentence encoder precision: {len(texts):,} prompts (1,000 ID + every {sample_every}th WordNet "
          f"candidate), {len(kept):,} negatives mined from that pool")
    print("| encoder | texts/s | vs fp32 | max abs feature difference | min cosine to fp32 | mined negatives shared with fp32 |")
    print("|---|---|---|---|---|---|")
    for name, (speed, features, labels) in results.items():
        print(f"| {name} | {speed:.0f} | {speed / rate:.2f}x | {(features - reference).abs().max():.3f} | "
              f"{(features * reference).sum(1).min():.4f} | {len(labels & kept) / len(kept):.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--baseline", default="HEAD", help="the commit whose code is today's way (default HEAD)")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--cold-both", action="store_true")
    parser.add_argument("--quantised", action="store_true")
    parser.add_argument("--skip-warm", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.setdefault("SYNOOD_HOME", str(Path("~/.cache/synood").expanduser()))
    sys.path.insert(0, str(ROOT))
    from synood.data.photos import by_name

    photo = str(by_name("cat").path)
    today, ours = head_tree(args.baseline), ROOT
    print(f"load average at start: {os.getloadavg()[0]:.1f}; SYNOOD_HOME={env['SYNOOD_HOME']}; photo {photo}")
    score = ["-m", "synood.cli", "score", "--suite", "offline", photo]
    mine = ["-m", "synood.cli", "mine", "--suite", "offline", "--out", "-"]
    if not args.skip_warm:
        run(ours, mine, env)  # ours writes its negative-label cache if it is not there yet (not timed)
        print(f"| what (warm caches) | ours | today's way ({args.baseline}), same run | ratio |\n|---|---|---|---|")
        for what, command in (("`synood score PHOTO`, wall", score), ("`synood mine --out -`, wall", mine)):
            new, old = best(ours, command, env, args.runs), best(today, command, env, args.runs)
            print(f"| {what} (best of {args.runs}) | {new:.1f} s | {old:.1f} s | {old / new:.1f}x |", flush=True)
        new, new_stages = app_first_score(ours, env)
        old, old_stages = app_first_score(today, env)
        print(f"| app's first score after a restart (DetectorHolder.get + scoring one photo) | {new:.1f} s | "
              f"{old:.1f} s | {old / new:.1f}x |")
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
        for name, stages in (("ours", new_stages), ("today's way", old_stages)):
            print(f"\nprogress messages of the first score, {name} (seconds since the click):")
            for line in stages:
                print(f"  {line}")
    if args.cold or args.cold_both:
        for name, tree in (("ours", ours), ("today's way", today))[:2 if args.cold_both else 1]:
            cold_env = {**env, "SYNOOD_HOME": tempfile.mkdtemp(prefix="synood-cold-")}
            seconds, _ = run(tree, score, cold_env)
            print(f"cold `synood score PHOTO` (empty SYNOOD_HOME), {name}: {seconds:.1f} s, "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.quantised:
        quantised()


if __name__ == "__main__":
    main()
