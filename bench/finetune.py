"""Fine-tuning (METHOD.md sections 4-5): an epoch on cached features vs re-encoding every epoch, and
stages 2 and 3 at the paper's scale.

1. Cache vs re-encode. N distinct images (256 px crops of the packaged photos, written as PNG) go
   through open_clip's ViT-B-16 (the paper's encoder architecture, random weights: the cost does not
   depend on the values) behind `OpenClipEncoder`. Timed: filling the feature cache (hash, decode,
   encode, write), reading it warm (hash + read), one stage-2 epoch on the cached features, and the
   plain way, an epoch that re-encodes every image first. The ratio is per epoch and per run of the
   paper's 3 + 5 epochs.
2. Paper scale. Random unit features standing in for 50k ID + 50k synthetic images (D = 512), 1000 ID
   texts and 10,499 negatives: pairing, one stage-2 epoch and one stage-3 epoch at batch 128 with
   the paper's optimisers; the whole 3 + 5 epochs extrapolated from them. `--scale` shrinks it.
Run: .venv/bin/python bench/finetune.py [--device cpu|cuda] [--images 64] [--scale 1.0]
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import best_of  # noqa: E402
from synood.method import finetune  # noqa: E402
from synood.data import images, photos  # noqa: E402
from synood.config import Config  # noqa: E402
from synood.data.features import image_features  # noqa: E402

PAPER = {"id": 50_000, "synthetic": 50_000, "negatives": 10_499, "classes": 1000, "dim": 512}


def encoder(device: torch.device, dtype: torch.dtype):
    """ViT-B-16 with random weights behind the library's encoder wrapper."""
    import open_clip

    from synood.models.clip import OpenClipEncoder
    from synood.models.interfaces import ComponentInfo

    model, _, transform = open_clip.create_model_and_transforms("ViT-B-16", device=device)
    model = model.to(dtype=dtype).eval()
    info = ComponentInfo("encoder", "open_clip ViT-B-16 (random init, for timing)", "ViT-B-16", "in-process", False,
                         sum(p.numel() for p in model.parameters()))
    return OpenClipEncoder(model, transform, open_clip.get_tokenizer("ViT-B-16"), 512, info, device, dtype)


def crops(folder: Path, count: int) -> list[Path]:
    """`count` distinct 256 px crops of the packaged photos, as PNG files."""
    sources = [images.load_image(p.path) for p in photos.photos() if p.path.is_file()]
    rng = random.Random(0)
    paths = []
    for i in range(count):
        image = sources[i % len(sources)]
        left, top = rng.randrange(max(1, image.width - 256)), rng.randrange(max(1, image.height - 256))
        paths.append(folder / f"{i:05d}.png")
        image.crop((left, top, left + 256, top + 256)).save(paths[-1])
    return paths


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_problem(n_id: int, n_syn: int, device: torch.device, negatives: int = PAPER["negatives"],
                   dim: int = PAPER["dim"]) -> finetune.Problem:
    g = torch.Generator().manual_seed(0)
    unit = lambda n: F.normalize(torch.randn(n, dim, generator=g), dim=-1)  # noqa: E731
    return finetune.Problem.build(unit(n_id), torch.randint(PAPER["classes"], (n_id,), generator=g), unit(n_syn),
                                  unit(PAPER["classes"]), unit(negatives)).to(device)


def epoch_seconds(trainer: finetune.Trainer, device: torch.device, epoch: int = 1) -> float:
    start = time.perf_counter()
    trainer.run_epoch(epoch)
    sync(device)
    return time.perf_counter() - start


def cache_vs_reencode(device: torch.device, dtype: torch.dtype, count: int, config: Config) -> None:
    enc = encoder(device, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        paths = crops(Path(tmp), count)
        cache = Path(tmp) / "cache"
        start = time.perf_counter()
        cold = image_features(enc, paths, root=cache)
        sync(device)
        fill = time.perf_counter() - start
        warm, found = best_of(lambda: image_features(enc, paths, root=cache), 3)
        assert torch.equal(found.features, cold.features)
        half = count // 2
        g = torch.Generator().manual_seed(0)
        problem = finetune.Problem.build(cold.features[:half], torch.randint(1000, (half,), generator=g),
                                         cold.features[half:], F.normalize(torch.randn(1000, 512, generator=g), dim=-1),
                                         F.normalize(torch.randn(PAPER["negatives"], 512, generator=g), dim=-1)
                                         ).to(device)

        def train_epoch() -> float:
            projection = finetune.new_projection(512, 0).to(device)
            return epoch_seconds(finetune.projection_trainer(problem, projection, config.projection), device)

        train = min(train_epoch() for _ in range(3))

        def encode_all() -> torch.Tensor:
            pictures = [images.load_image(p) for p in paths]
            out = torch.cat([enc.encode_image(enc.preprocess(pictures[i:i + 32])) for i in range(0, count, 32)])
            sync(device)
            return out

        encode, _ = best_of(encode_all, 2)
    epochs = config.projection.epochs + config.negtune.epochs
    cached_epoch, plain_epoch = warm + train, encode + train
    print(f"## cache vs re-encode: {count} images, ViT-B-16 {dtype} on {device}")
    print(f"fill the cache (hash, decode, encode, write): {fill:.2f} s ({count / fill:.1f} images/s)")
    print(f"read it warm (hash + read):                  {warm * 1000:.1f} ms")
    print(f"one stage-2 epoch on cached features:         {train * 1000:.1f} ms")
    print(f"re-encode every image (decode + encode):      {encode:.2f} s")
    print(f"epoch (warm read + train) vs re-encoding:     {cached_epoch:.3f} s vs {plain_epoch:.2f} s "
          f"-> {plain_epoch / cached_epoch:.0f}x")
    run_cached = fill + epochs * train  # features are read once per run and kept in memory
    run_plain = epochs * plain_epoch
    print(f"run of {epochs} epochs, cached vs re-encoding:        {run_cached:.2f} s vs {run_plain:.2f} s "
          f"-> {run_plain / run_cached:.1f}x")


def paper_scale(device: torch.device, scale: float, config: Config) -> None:
    n_id, n_syn = int(PAPER["id"] * scale), int(PAPER["synthetic"] * scale)
    start = time.perf_counter()
    problem = random_problem(n_id, n_syn, device)
    sync(device)
    pairing = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    projection = finetune.new_projection(PAPER["dim"], 0).to(device)
    stage2 = epoch_seconds(finetune.projection_trainer(problem, projection, config.projection), device)
    negatives = torch.nn.Parameter(problem.negative_text.clone())
    stage3 = epoch_seconds(finetune.negatives_trainer(problem, negatives, config.negtune), device)
    total = config.projection.epochs * stage2 + config.negtune.epochs * stage3
    memory = (f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU peak" if device.type == "cuda"
              else f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB peak RSS")
    print(f"## paper scale x{scale:g} on {device}: {n_id:,} ID + {n_syn:,} synthetic features, "
          f"{len(problem.used):,} of {PAPER['negatives']:,} negatives paired")
    print(f"pairing (build the problem):  {pairing:.2f} s")
    print(f"stage 2 epoch (projection):   {stage2:.2f} s ({(n_id + n_syn) / stage2:,.0f} samples/s)")
    print(f"stage 3 epoch (negatives):    {stage3:.2f} s ({n_syn / stage3:,.0f} samples/s)")
    print(f"{config.projection.epochs} + {config.negtune.epochs} epochs: {total:.1f} s; {memory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=64, help="images for the cache comparison (default 64)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's 100k images (default 1)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    args = parser.parse_args()
    device = torch.device(args.device)
    config = Config()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else ""))
    cache_vs_reencode(device, getattr(torch, args.dtype), args.images, config)
    paper_scale(device, args.scale, config)


if __name__ == "__main__":
    main()
