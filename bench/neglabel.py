"""NegLabel's hot paths, each beside the plain way of doing the same work in the same run.

1. Grouped NegLabel score: `scores.grouped_scores` (one gather, logsumexp per group, sigmoid of the
   difference) vs. a loop written here from the definition (METHOD.md section 1: drop the
   remainder, the same permutation from `scores.group_permutation`, then per group
   softmax([ID logits, group's negative logits]) summed over the ID part, mean over groups).
   B = 256 images, 1000 ID labels, M = 10,499 negatives (the released list's size), logits =
   100 * cosine of random unit vectors (D = 512); ngroup = 100 and 1000. Best-of-N wall times and
   the largest absolute difference between the two.
2. Text encoding on a real-size open_clip ViT-B-16 text tower with RANDOM weights (timing and
   exactness only): 512 WordNet noun prompts "the nice {word}" in batches of 128 through
   (a) `encode_text`, open_clip's plain path padding every prompt to 77 tokens, fp32;
   (b) `encode_text_fast`, tokens cut to the batch's longest prompt, fp32;
   (c) `encode_text_fast(bf16=True)`, the same under CPU bf16 autocast.
3. NegMining under the offline suite (real weights: EfficientNet-Lite0 + all-MiniLM-L6-v2): cold
   (SYNOOD_HOME is a fresh temporary directory, so every WordNet prompt is encoded) vs. warm (the
   same call again in the same process: text-feature cache reads), and whether both agree.
Run: .venv/bin/python bench/neglabel.py   (about 3 minutes on 2 idle CPU cores; the cold mining is ~90 s)
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HOME = tempfile.mkdtemp(prefix="synood-bench-neglabel-")
os.environ["SYNOOD_HOME"] = HOME  # before anything is built: cache_home() reads it at call time

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import best_of  # noqa: E402
from synood.pipelines import mining  # noqa: E402
from synood.method import scores  # noqa: E402
from synood.data.wordnet import candidates  # noqa: E402

COMMAND = ".venv/bin/python bench/neglabel.py"


def reference_grouped(id_logits: torch.Tensor, neg_logits: torch.Tensor, ngroup: int, seed: int = 0) -> torch.Tensor:
    """NegLabel's grouped score straight from the definition, one group at a time."""
    groups = scores.group_permutation(neg_logits.shape[1], ngroup, seed)  # drops the remainder, seeded shuffle
    n_id = id_logits.shape[1]
    per_group = [torch.cat([id_logits, neg_logits[:, group]], dim=1).softmax(-1)[:, :n_id].sum(-1)
                 for group in groups]
    return torch.stack(per_group, dim=1).mean(dim=1)


def unit(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=generator), dim=-1)


def grouped_score() -> None:
    print("1. Grouped NegLabel score: B=256 images, 1000 ID labels, M=10,499 negatives, "
          "logits = 100 * cosine of random unit vectors (D=512)")
    g = torch.Generator().manual_seed(0)
    images, id_text, neg_text = unit(256, 512, g), unit(1000, 512, g), unit(10_499, 512, g)
    id_logits, neg_logits = 100 * images @ id_text.T, 100 * images @ neg_text.T
    print(f"   {'ngroup':>6} | {'grouped_scores':>14} | {'loop from definition':>20} | {'ratio':>6} | "
          "max |difference| (and each vs the loop in float64)")
    for ngroup, runs in ((100, 20), (1000, 3)):  # the loop's runs; grouped_scores gets 50 (it takes ~10 ms)
        ours, (s, _) = best_of(lambda: scores.grouped_scores(id_logits, neg_logits, ngroup=ngroup), 50)
        plain, ref = best_of(lambda: reference_grouped(id_logits, neg_logits, ngroup), runs)
        exact = reference_grouped(id_logits.double(), neg_logits.double(), ngroup)
        diff = (s - ref).abs().max().item()
        print(f"   {ngroup:>6} | {1e3 * ours:>11.1f} ms | {1e3 * plain:>17.1f} ms | {plain / ours:>5.1f}x | "
              f"{diff:.1e}  (ours {(s.double() - exact).abs().max().item():.1e}, loop "
              f"{(ref.double() - exact).abs().max().item():.1e}; best of 50 / {runs}; S in [{s.min():.3f}, {s.max():.3f}])")


def text_encoding() -> None:
    from synood.models.clip import load
    from synood.models.suites import ComponentSpec

    print("\n2. Text encoding: open_clip ViT-B-16-quickgelu text tower, RANDOM weights (timing and exactness "
          "only), fp32 model")
    start = time.perf_counter()
    encoder = load(ComponentSpec("encoder", "open_clip", "ViT-B-16-quickgelu", None), torch.device("cpu"), "float32")
    built = time.perf_counter() - start
    nouns = candidates("noun")
    texts = [f"the nice {c.word}" for c in nouns[::len(nouns) // 512][:512]]
    batches = [texts[i:i + 128] for i in range(0, len(texts), 128)]
    lengths = [int((encoder.tokenizer(b) != 0).sum(dim=1).max()) for b in batches]
    print(f"   {len(texts)} prompts in {len(batches)} batches of 128 (built in {built:.1f} s); longest prompt per "
          f"batch {lengths} tokens (the plain path pads all to 77)")

    def run(encode):
        return lambda: torch.cat([encode(b) for b in batches])

    encoder.encode_text_fast(batches[0][:8], bf16=True)  # first autocast call: kernel set-up out of the timing
    plain, ref = best_of(run(encoder.encode_text), 2)
    fast, out = best_of(run(lambda b: encoder.encode_text_fast(b)), 3)
    bf16, out16 = best_of(run(lambda b: encoder.encode_text_fast(b, bf16=True)), 3)
    n = len(texts)
    print(f"   {'way':<44} | {'texts/s':>8} | {'vs (a)':>6} | agreement with (a)")
    print(f"   {'(a) encode_text: 77-token padding, fp32':<44} | {n / plain:>8.0f} | {'1.0x':>6} | "
          f"(best of 2: {plain:.1f} s)")
    print(f"   {'(b) encode_text_fast: cut to longest, fp32':<44} | {n / fast:>8.0f} | {plain / fast:>5.1f}x | "
          f"max |difference| {(out - ref).abs().max().item():.1e}  (best of 3: {fast:.2f} s)")
    cos = (out16 * ref).sum(-1)
    slower = "  SLOWER than (b) on this CPU" if bf16 > fast else ""
    print(f"   {'(c) encode_text_fast(bf16=True)':<44} | {n / bf16:>8.0f} | {plain / bf16:>5.1f}x | "
          f"min cosine {cos.min().item():.6f}  (best of 3: {bf16:.2f} s){slower}")


def mining_cold_warm() -> None:
    from synood.models.suites import SUITES, Suite

    print(f"\n3. NegMining, offline suite (EfficientNet-Lite0 + all-MiniLM-L6-v2, real weights), SYNOOD_HOME={HOME}")
    start = time.perf_counter()
    suite = Suite(SUITES["offline"], device="cpu")
    encoder, names = suite.encoder, suite.classifier.class_names  # the stand-in caches its anchor texts here
    built = time.perf_counter() - start
    n_noun, n_adj = len(candidates("noun")), len(candidates("adj"))  # WordNet already loaded (measurement 2)
    start = time.perf_counter()
    labels, features = mining.mine(encoder.text_features, names)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    labels2, features2 = mining.mine(encoder.text_features, names)
    warm = time.perf_counter() - start
    cached = sum(p.stat().st_size for p in (Path(HOME) / "text-features").glob("*.safetensors"))
    nouns = sum(label.pos == "noun" for label in labels)
    same = labels == labels2 and torch.equal(features, features2)
    print(f"   suite built in {built:.1f} s (not counted); {len(names) + n_noun + n_adj:,} prompts "
          f"({len(names)} ID + {n_noun:,} nouns + {n_adj:,} adjectives)")
    print(f"   {'run':<46} | {'time':>7} | negatives")
    print(f"   {'cold: fresh SYNOOD_HOME, every prompt encoded':<46} | {cold:>5.1f} s | "
          f"{len(labels):,} ({nouns:,} nouns + {len(labels) - nouns:,} adjectives)")
    print(f"   {'warm: same call again, cache reads':<46} | {warm:>5.1f} s | {len(labels2):,}")
    print(f"   ratio {cold / warm:.0f}x; cache on disk {cached / 2**20:.0f} MiB; identical labels and features: {same}")


def main() -> None:
    print(f"$ {COMMAND}")
    print(f"load average at start {os.getloadavg()[0]:.1f} (best-of-N times absorb other processes' noise)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}\n")
    try:
        grouped_score()
        text_encoding()
        mining_cold_warm()
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
