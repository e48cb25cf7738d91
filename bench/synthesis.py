"""Noise optimisation (METHOD.md section 3): one iteration's cost per gradient mode, our loop vs the
reference code's way, and images per GPU-hour extrapolated from a FLOP count.

1. One noise iteration (render + classifier + loss + backward + noise step, the body of
   `synthesis.noise_steps`) on the tiny suite (`tiny_pipeline()`'s SD2-inpainting architecture at
   64 px and the tiny ResNet), gradient "skip" vs "full" with and without per-step checkpointing.
   Each configuration runs in a FRESH subprocess: wall time (first call, then best of the rest) and
   peak memory two ways: (a) peak RSS growth, ru_maxrss after the iterations minus VmRSS after
   building and preparing; (b) torch's CPU allocator, profiled (torch.profiler profile_memory=True)
   over one more iteration: the peak of bytes allocated minus bytes freed since the iteration began.
   SD2-inpainting's real architecture is NOT run here by default: on this 2-core machine one skip
   iteration took 29 to 60 s at 128 px (256 px would be about 4x that, full mode 2 to 3x more);
   `--real 128` runs it anyway (several minutes).
2. Our loop vs the reference code's way at optimisation off (plain rendering): the reference calls
   a pipeline for every iteration (its copy of the stock one, handed the noised latents); measured
   here with the stock StableDiffusionInpaintPipeline, which redoes the prompt encoding, image and
   masked-image latents and timesteps in every call; ours prepares once and renders the noise
   (`InpaintCanvas.render`). Time per iteration both ways and whether they give the same pixels.
   The stock call runs under no_grad: it cannot give the noise a gradient at all. Also compared: the
   gradient our skip mode hands the noise vs the one the reference code takes (generate_near_ood_sample.py
   differentiates latents / scaling_factor).
3. Images per GPU-hour at the paper's settings (SD2 inpainting, 512 px, strength 0.6, 20 DDIM steps
   -> 12 guided UNet steps at batch 2, 3 iterations, skip gradient, ResNet-50), EXTRAPOLATED: the
   FLOPs of one image counted with torch.utils.flop_counter.FlopCounterMode on the real architecture
   built on the meta device (random weights, no memory, nothing computed), divided into an assumed
   sustained GPU throughput. Bytes saved for backward are counted on the same meta run (attention routed
   to the fused CPU kernel, see `fused_attention`). Also counted: the reference code's way per image.
Run: .venv/bin/python bench/synthesis.py   (about 2 minutes on 2 cores; torch runs 1 thread, see --threads)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from bench.timing import best_of  # noqa: E402
from synood.models import GenerationSettings  # noqa: E402

COMMAND = "python bench/synthesis.py"
PROMPT = "A photo only remain bamboo, tourist, leaf, railing"
SEED = 0
MODES = (("skip", False), ("full", False), ("full", True))  # (gradient, checkpointing)
# NVIDIA H100 SXM5 datasheet, dense (no 2:4 sparsity) peak throughput, TFLOP/s.
H100 = (("BF16/FP16 tensor cores", 989.4), ("TF32 tensor cores", 494.7), ("FP32 (no tensor cores)", 66.9))
UTILISATION = (0.10, 0.30, 0.50)
GiB, MiB = 2**30, 2**20


def mode_name(gradient: str, checkpointing: bool) -> str:
    return "full + checkpointing" if gradient == "full" and checkpointing else gradient


def test_image(size: int) -> Image.Image:
    """A fixed RGB picture (smooth gradients plus a little noise) standing in for an ID photo."""
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], axis=-1)
    rgb = rgb + 0.05 * np.random.RandomState(0).standard_normal(rgb.shape)
    return Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8))


# --- the models ---------------------------------------------------------------------------------

def sd2_modules(size: int):
    """SD2-inpainting's UNet, VAE and text encoder from its published config values, random weights,
    built on the current default device (use `with torch.device("meta")` for shapes only)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=size // 8, in_channels=9, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4, sample_size=size,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(  # OpenCLIP ViT-H/14's text tower as SD2 ships it
        vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
        projection_dim=512, hidden_act="gelu", max_position_embeddings=77,
    ))
    return unet.eval(), vae.eval(), text_encoder.eval()


def build(arch: str, size: int):
    """(InpaintGenerator, ImageNetClassifier) on the CPU in float32."""
    device = torch.device("cpu")
    if arch == "tiny":
        from synood.config import ModelsConfig
        from synood.models import Suite

        suite = Suite.from_config(ModelsConfig(suite="tiny", device="cpu", dtype="float32"))
        return suite.generator, suite.classifier
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline
    from synood.models.classifier import load as load_classifier
    from synood.models.generator import SD2_SCHEDULER, InpaintGenerator, clip_tokenizer
    from synood.models.interfaces import ComponentInfo, count_parameters
    from synood.models.suites import ComponentSpec

    torch.manual_seed(0)
    unet, vae, text_encoder = sd2_modules(size)
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), unet=unet,
        scheduler=DDIMScheduler(**SD2_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    info = ComponentInfo(role="generator", name=f"SD2-inpainting architecture at {size} px (random)",
                         architecture="sd2", source="built in-process", pretrained=False,
                         parameters=count_parameters(unet, vae, text_encoder))
    classifier = load_classifier(ComponentSpec("classifier", "torchvision", "resnet50", None), device, "float32")
    return InpaintGenerator(pipe, info, device), classifier


def one_iteration(canvas, classifier, noise: torch.Tensor,
                  step_size: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One non-final iteration of `synthesis.noise_steps`: render, score, loss, dL/dnoise, noise step."""
    from synood.method.synthesis import ood_loss

    noise = noise.detach().requires_grad_(True)
    image = canvas.render(noise)
    value = ood_loss(classifier.logits(image[None]))
    (grad,) = torch.autograd.grad(value, noise)
    return noise.detach() - step_size * grad, grad, value.detach()


# --- 1. the per-mode worker (a fresh process per configuration) --------------------------------------

def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def allocator_peak(fn) -> tuple[int, int]:
    """(peak, retained) bytes of torch's CPU allocator over fn(), from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak, current


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    generator, classifier = build(args.arch, args.size)
    built = time.perf_counter() - start
    image = test_image(generator.size)
    start = time.perf_counter()
    canvas = generator.prepare(image, GenerationSettings(PROMPT, SEED, gradient=args.gradient,
                                                              checkpointing=args.checkpointing))
    prepared = time.perf_counter() - start
    base_rss, base_max = rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, noise = [], canvas.noise
    for index in range(args.repeats):
        start = time.perf_counter()
        stepped, grad, loss = one_iteration(canvas, classifier, canvas.noise, generator.step_size)
        times.append(time.perf_counter() - start)
        if index == 0:
            first_grad, first_loss, noise = grad, loss.item(), stepped
    peak_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak, retained = allocator_peak(lambda: one_iteration(canvas, classifier, noise, generator.step_size))
    print(json.dumps({
        "built_s": built, "prepared_s": prepared, "times": times, "base_rss_mib": base_rss / 1024,
        "base_maxrss_mib": base_max / 1024, "rss_growth_mib": (peak_max - base_rss) / 1024,
        "new_high": peak_max > base_max, "alloc_peak_mib": peak / MiB, "alloc_retained_mib": retained / MiB,
        "loss": first_loss, "grad": first_grad.flatten().tolist(),
    }))


def run_worker(arch: str, size: int, gradient: str, checkpointing: bool, threads: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--arch", arch, "--size", str(size), "--gradient", gradient,
           "--threads", str(threads), "--repeats", str(repeats)] + (["--checkpointing"] if checkpointing else [])
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def per_mode(arch: str, size: int, threads: int, repeats: int) -> None:
    label = "tiny suite (SD2-inpainting architecture at diffusers' test sizes, tiny ResNet)" if arch == "tiny" \
        else f"SD2-inpainting's real architecture at {size} px, random weights, ResNet-50"
    print(f"1. One noise iteration, {label}, {size} px, strength 0.6, 20 DDIM steps (12 UNet steps at batch 2), "
          f"float32, {threads} thread(s); each mode in a fresh process")
    results = {}
    for gradient, checkpointing in MODES:
        results[(gradient, checkpointing)] = run_worker(arch, size, gradient, checkpointing, threads, repeats)
    skip = results[("skip", False)]
    best_skip = min(skip["times"][1:] or skip["times"])
    print(f"   {'gradient':<22} | {'first call':>10} | {'best of rest':>12} | {'vs skip':>7} | "
          f"{'peak RSS growth':>15} | {'allocator peak':>14} | loss")
    for (gradient, checkpointing), r in results.items():
        best = min(r["times"][1:] or r["times"])
        high = "" if r["new_high"] else " (<=)"
        print(f"   {mode_name(gradient, checkpointing):<22} | {r['times'][0]:>8.2f} s | {best:>10.2f} s | "
              f"{best / best_skip:>6.1f}x | {r['rss_growth_mib']:>9.1f} MiB{high} | {r['alloc_peak_mib']:>10.1f} MiB"
              f" | {r['loss']:.4f}")
    print(f"   best of {repeats - 1} calls after the first; baseline after building and preparing: RSS "
          f"{skip['base_rss_mib']:.0f} MiB (building {skip['built_s']:.1f} s, preparing {skip['prepared_s']:.2f} s). "
          "Peak RSS growth = ru_maxrss after the iterations minus VmRSS before them ('(<=)': no new high, so an upper "
          "bound). Allocator peak = torch.profiler(profile_memory=True) over one more iteration: most bytes "
          "allocated-minus-freed by torch's CPU allocator since it began (excludes oneDNN scratch and Python objects).")
    grads = {key: torch.tensor(r["grad"], dtype=torch.float64) for key, r in results.items()}
    full, ckpt = grads[("full", False)], grads[("full", True)]
    cos = F.cosine_similarity(grads[("skip", False)], full, dim=0).item()
    print(f"   dL/dnoise: full vs full + checkpointing max |difference| {(full - ckpt).abs().max().item():.1e} "
          f"(|g| {full.norm().item():.3e}); skip (straight-through dL/dz0) vs full: cosine {cos:.3f}, "
          f"|skip| / |full| = {grads[('skip', False)].norm().item() / full.norm().item():.2f}")


# --- 2. our loop vs re-invoking the stock pipeline ----------------------------------------------------

def stock_render(generator, image: Image.Image, seed: int) -> torch.Tensor:
    """`InpaintGenerator.generate`'s pipeline call with output_type="pt": (3, S, S) in [0, 1]."""
    image = image.convert("RGB").resize((generator.size, generator.size), Image.BICUBIC)
    mask = Image.new("L", image.size, 255)
    return generator.pipe(
        prompt=PROMPT, image=image, mask_image=mask, height=generator.size, width=generator.size, strength=0.6,
        num_inference_steps=20, guidance_scale=8.0, generator=torch.Generator(generator.device).manual_seed(seed),
        output_type="pt",
    ).images[0]


def ours_vs_stock(generator, classifier, runs: int) -> None:
    print(f"\n2. Our loop vs the reference code's way (the pipeline called again for every iteration), tiny suite, "
          f"{generator.size} px, optimisation off (plain rendering), best of {runs}")
    image = test_image(generator.size)
    stock_s, stock = best_of(lambda: stock_render(generator, image, SEED), runs)
    prepare_s, canvas = best_of(lambda: generator.prepare(image, GenerationSettings(PROMPT, SEED)), runs)

    def render():
        with torch.no_grad():
            return canvas.render(canvas.noise)

    render_s, ours = best_of(render, runs)
    from synood.data.images import to_pil

    pil_same = np.array_equal(np.asarray(generator.generate(image, PROMPT, SEED)), np.asarray(to_pil(ours)))
    print(f"   {'way':<58} | {'per iteration':>13} | {'3 iterations':>12}")
    print(f"   {'stock pipeline call per iteration (the reference way)':<58} | {stock_s:>11.3f} s | {3 * stock_s:>10.3f} s")
    print(f"   {'ours: prepare once + InpaintCanvas.render per iteration':<58} | {render_s:>11.3f} s | "
          f"{prepare_s + 3 * render_s:>10.3f} s  (prepare {prepare_s:.3f} s)")
    print(f"   ratio per iteration {stock_s / render_s:.2f}x; per 3-iteration image "
          f"{3 * stock_s / (prepare_s + 3 * render_s):.2f}x")
    print(f"   same output: max |pixel difference| render(seed noise) vs pipe(output_type='pt') = "
          f"{(stock - ours).abs().max().item():.1e}; generate()'s PNG-ready image equal: {pil_same}")
    # The gradient each way: the reference code sets requires_grad on latents / scaling_factor (the decoder's input)
    # and steps the noise by that tensor's grad; InpaintCanvas.render (skip) hands the same gradient to the noise.
    from synood.method.synthesis import ood_loss

    _, grad, _ = one_iteration(canvas, classifier, canvas.noise, generator.step_size)
    scale = canvas.vae.config.scaling_factor
    with torch.no_grad():
        unscaled = (canvas.denoise(canvas.noise) / scale).requires_grad_(True)
    image = (canvas.vae.decode(unscaled, return_dict=False)[0][0].float() / 2 + 0.5).clamp(0, 1)
    (reference,) = torch.autograd.grad(ood_loss(classifier.logits(image[None])), unscaled)
    print(f"   gradient handed to the noise, ours (InpaintCanvas.render, skip) vs the reference code's (grad of "
          f"latents / scaling_factor): norm ratio {(grad.norm() / reference.norm()).item():.4f}, max |difference| "
          f"{(grad - reference).abs().max().item():.1e}")


# --- 3. FLOPs and images per GPU-hour -------------------------------------------------------------

@contextlib.contextmanager
def fused_attention():
    """The meta device has no fused attention kernel, so F.scaled_dot_product_attention falls back to
    the math path, which saves every attention matrix for backward (79 GiB instead of 38 GiB in full
    mode at 512 px). Route unmasked calls to the CPU flash kernel, as CPUs and GPUs run them."""
    plain = F.scaled_dot_product_attention

    def fused(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if attn_mask is not None or kwargs:
            return plain(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                         scale=scale, **kwargs)
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, dropout_p, is_causal, scale=scale)[0]

    F.scaled_dot_product_attention = fused
    try:
        yield
    finally:
        F.scaled_dot_product_attention = plain


def counted(fn, frozen) -> tuple[float, int]:
    """(FLOPs, bytes saved for backward excluding weights) of fn()."""
    from torch.utils.flop_counter import FlopCounterMode

    weights = {t.untyped_storage()._cdata for m in frozen for t in (*m.parameters(), *m.buffers())}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in weights:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return counter.get_total_flops(), sum(saved.values())


def meta_canvas(unet, vae, size: int, gradient: str, checkpointing: bool):
    """An InpaintCanvas with the paper's schedule on meta tensors (as `prepare` would build it)."""
    from diffusers import DDIMScheduler
    from synood.models.generator import SD2_SCHEDULER, InpaintCanvas

    scheduler = DDIMScheduler(**SD2_SCHEDULER)
    steps, strength = 20, 0.6
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps[max(steps - int(steps * strength), 0):]
    h = size // 8
    z = lambda *shape: torch.zeros(*shape, device="meta")  # noqa: E731
    return InpaintCanvas(
        source=z(3, size, size), noise=z(1, 4, h, h), unet=unet, vae=vae, scheduler=scheduler, timesteps=timesteps,
        prompt_embeds=z(2, 77, 1024), image_latents=z(1, 4, h, h), mask=torch.ones(2, 1, h, h, device="meta"),
        masked_image_latents=z(2, 4, h, h), guidance=8.0, gradient=gradient, checkpointing=checkpointing,
    )


def paper_flops(size: int = 512) -> dict:
    from synood.models.classifier import load as load_classifier
    from synood.models.suites import ComponentSpec

    meta = torch.device("meta")
    with meta:
        unet, vae, text_encoder = sd2_modules(size)
    classifier = load_classifier(ComponentSpec("classifier", "torchvision", "resnet50", None), meta, "float32")
    frozen = (unet.requires_grad_(False), vae.requires_grad_(False), text_encoder.requires_grad_(False), classifier.net)
    weights_bytes = sum(p.numel() for m in frozen for p in m.parameters()) * 4
    out = {"weights_gib": weights_bytes / GiB, "params": {name: sum(p.numel() for p in m.parameters())
                                                          for name, m in zip(("unet", "vae", "text", "resnet"), frozen)}}
    tokens = torch.zeros(1, 77, dtype=torch.long, device=meta)
    pixels = torch.zeros(1, 3, size, size, device=meta)

    def text():  # the prompt and the empty (negative) prompt
        with torch.no_grad():
            text_encoder(tokens)
            text_encoder(tokens)

    def encode():  # one VAE encoding (the image latents, or the masked image's)
        with torch.no_grad():
            vae.encode(pixels)

    out["text"], _ = counted(text, frozen)
    out["encode"], _ = counted(encode, frozen)
    out["prepare"] = out["text"] + 2 * out["encode"]
    with fused_attention():
        for gradient, checkpointing in MODES:
            canvas = meta_canvas(unet, vae, size, gradient, checkpointing)
            flops, saved = counted(lambda: one_iteration(canvas, classifier, canvas.noise, 10.0), frozen)
            out[mode_name(gradient, checkpointing)] = {"flops": flops, "saved": saved}
        canvas = meta_canvas(unet, vae, size, "skip", False)

        def last():  # the last iteration renders and scores but takes no gradient (noise_steps)
            with torch.no_grad():
                classifier.logits(canvas.render(canvas.noise)[None])

        out["last"], _ = counted(last, frozen)
        latents = torch.zeros(1, 4, size // 8, size // 8, device=meta, requires_grad=True)
        out["step"] = counted(lambda: canvas.step(latents, canvas.timesteps[0]), frozen)
    return out


def tiny_image_rate(generator, classifier, runs: int) -> tuple[float, float]:
    """(seconds, FLOPs) for one tiny-suite image: prepare + `optimise_noise`, 3 iterations, skip gradient."""
    from torch.utils.flop_counter import FlopCounterMode

    from synood.method.synthesis import optimise_noise

    image = test_image(generator.size)

    def one():
        canvas = generator.prepare(image, GenerationSettings(PROMPT, SEED))
        return optimise_noise(canvas.render, canvas.noise, classifier.logits, 3, generator.step_size)

    seconds, _ = best_of(one, runs)
    with FlopCounterMode(display=False) as counter:
        one()
    return seconds, counter.get_total_flops()


def gpu_hour(size: int, generator, classifier, runs: int) -> None:
    print(f"\n3. Images per GPU-hour at the paper's settings, EXTRAPOLATED from a FLOP count (no GPU here): "
          f"SD2-inpainting architecture at {size} px, ResNet-50, 12 guided UNet steps (batch 2), 3 iterations")
    start = time.perf_counter()
    f = paper_flops(size)
    counted_s = time.perf_counter() - start
    p = f["params"]
    print(f"   counted with FlopCounterMode on the meta device in {counted_s:.0f} s (random-init modules, no memory, "
          f"nothing computed): UNet {p['unet'] / 1e6:.1f}M, VAE {p['vae'] / 1e6:.1f}M, text encoder "
          f"{p['text'] / 1e6:.1f}M, ResNet-50 {p['resnet'] / 1e6:.1f}M parameters "
          f"({f['weights_gib']:.2f} GiB in fp32). FLOPs = 2 x multiply-adds of matmuls, convolutions and attention; "
          "norms, activations and the scheduler are not counted.")
    unet_step, step_saved = f["step"]
    print(f"   {'piece':<58} | {'TFLOP':>7} | saved for backward (fp32; bf16 is half)")
    print(f"   {'prepare: 2 text encodings (prompt, empty prompt)':<58} | {f['text'] / 1e12:>7.2f} |")
    print(f"   {'prepare: 1 VAE encoding (it makes 2: image, masked image)':<58} | {f['encode'] / 1e12:>7.2f} |")
    print(f"   {'one guided UNet step (batch 2), forward':<58} | {unet_step / 1e12:>7.2f} | "
          f"{step_saved / GiB:.2f} GiB when it keeps its graph")
    print(f"   {'last iteration: render + ResNet-50, no gradient':<58} | {f['last'] / 1e12:>7.2f} |")
    for gradient, checkpointing in MODES:
        name = mode_name(gradient, checkpointing)
        extra = f" + {step_saved / GiB:.2f} GiB for the step being recomputed" if checkpointing else ""
        print(f"   {'iteration with gradient, ' + name:<58} | {f[name]['flops'] / 1e12:>7.2f} | "
              f"{f[name]['saved'] / GiB:.2f} GiB{extra}")
    per_image = {name: f["prepare"] + 2 * f[name]["flops"] + f["last"]
                 for name in (mode_name(g, c) for g, c in MODES)}
    print("   per image (our loop: prepare once, 3 renders, gradients after the first two; the last "
          "iteration's gradient is never used): " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP" for k, v in per_image.items()))
    print(f"   the stock pipeline repeats the whole preparation ({f['prepare'] / 1e12:.2f} TFLOP) in every call: "
          f"{100 * f['prepare'] / f['last']:.1f} % of one render's FLOPs at {size} px, so calling it per iteration costs "
          f"{(f['prepare'] + f['last']) / f['last']:.2f}x ours in FLOPs at optimisation off")
    # The reference code (generate_near_ood_sample.py) encodes the image once per batch, then per iteration calls
    # its copy of the pipeline with the noised latents and the masked image in pixels (2 text encodings + 1 VAE
    # encoding + 12 UNet steps, output_type="latent"), decodes with autograd and takes a gradient, the last too.
    reference = f["encode"] + 3 * (f["text"] + f["encode"] + f["skip"]["flops"])
    print(f"   the reference code's way, per image (image encoded once; per iteration its pipeline copy re-encodes the "
          f"prompts and the masked image; all 3 iterations take a gradient): {reference / 1e12:.1f} TFLOP, "
          f"{reference / per_image['skip']:.2f}x ours (skip)")
    print(f"\n   images per GPU-hour = 3600 x utilisation x peak / FLOPs per image (skip gradient, "
          f"{per_image['skip'] / 1e12:.1f} TFLOP), H100 SXM dense peaks from NVIDIA's datasheet:")
    header = " | ".join(f"{100 * u:>4.0f} % util" for u in UTILISATION)
    print(f"   {'precision (peak TFLOP/s)':<34} | {header} | full + ckpt at 30 %")
    for name, peak in H100:
        cells = " | ".join(f"{3600 * u * peak * 1e12 / per_image['skip']:>11,.0f}" for u in UTILISATION)
        ckpt = 3600 * 0.3 * peak * 1e12 / per_image["full + checkpointing"]
        print(f"   {f'{name} ({peak:g})':<34} | {cells} | {ckpt:>9,.0f}")
    seconds, tiny_flops = tiny_image_rate(generator, classifier, runs)
    print(f"   for contrast, MEASURED here: the tiny suite at {generator.size} px (prepare + optimise_noise, 3 iterations, "
          f"skip), {seconds:.2f} s per image = {3600 / seconds:,.0f} images/hour on this CPU; it is only "
          f"{tiny_flops / 1e9:.1f} GFLOP per image (counted the same way), i.e. {tiny_flops / seconds / 1e9:.0f} "
          f"GFLOP/s sustained on {torch.get_num_threads()} CPU thread(s).")
    print("   The GPU figures are an extrapolation, not a measurement: the utilisation a batch-2 UNet step, a 512 px "
          "VAE decode and its backward reach is assumed, the uncounted norms, activations, scheduler and Python "
          "overhead are folded into it, and the 10 % column is the cautious one for one image at a time.")


def main() -> None:
    parser = argparse.ArgumentParser(description="Noise optimisation: cost per gradient mode, our loop vs the "
                                     "reference way, images per GPU-hour (extrapolated).")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: with 2 on this shared 2-core machine, times varied 5x)")
    parser.add_argument("--repeats", type=int, default=4, help="iterations timed per mode (the first is cold)")
    parser.add_argument("--real", type=int, default=0, metavar="PX",
                        help="also run part 1 on SD2-inpainting's real architecture at PX px (minutes per mode)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arch", default="tiny", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--gradient", default="skip", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    print(f"$ {COMMAND}" + "".join(f" {a}" for a in sys.argv[1:]))
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch {torch.__version__}, "
          f"{args.threads} thread(s), CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    per_mode("tiny", 64, args.threads, args.repeats)
    if args.real:
        print()
        per_mode("sd2", args.real, args.threads, 2)
    else:
        print("   SD2-inpainting's real architecture: not run (one skip iteration took 29 to 60 s at 128 px on this "
              "machine, so 256 px is minutes per mode); `--real 128` runs it.")
    generator, classifier = build("tiny", 64)
    ours_vs_stock(generator, classifier, runs=3)
    gpu_hour(512, generator, classifier, runs=2)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}; total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
