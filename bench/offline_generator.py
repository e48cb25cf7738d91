"""The offline suite's generator: the old object eraser (CAM + Telea + noise) beside the context fill (CAM +
context-label maps + shift-map + noise, synood/models/classical.py) in one run, on the packaged ID photos.

Per photo: the context labels from the offline labeller; both generators' canvases (seed 0) and the noise
optimisation at the default settings (3 iterations, the classical step 0.2, squared loss, m_out = -5).
Reported:
1. Time per image to prepare a canvas, wall and process CPU (1 torch thread; the machine is shared, so CPU
   time is the steadier figure), at each generator's working size.
2. Share of photos whose classifier top-1 changes after generation (iteration 1) and after the noise
   optimisation (last iteration); mean energy E = -logsumexp and reference statistic s = mean - logsumexp
   before/after; share in the boundary band |s - m_out| <= 1 (the hinge loss's margin) and E >= m_out - 1.
3. Context sensitivity: the same photo with another photo's labels; mean absolute pixel change inside the
   object region, and the loss change (the old generator ignores labels: 0).
4. Context share: shift-map copies pixels verbatim, so at shift-map's working size the share of filled pixels
   whose exact CIELab colour occurs among the context-ranked pixels, for the context fill vs plain shift-map
   from every clear pixel (an upper bound for plain: a colour may occur on both sides).
5. assets/offline-generator/before-after.png (source | old | new, with the labels) and contexts.png (one
   photo under its own labels and two made-up ones).
Run: .venv/bin/python bench/offline_generator.py   (about 5 minutes on 2 shared cores; first run also encodes
the labeller's WordNet nouns)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from synood.data import photos  # noqa: E402
from synood.config import SynthesisConfig  # noqa: E402
from synood.data.images import to_pil  # noqa: E402
from synood.models import GenerationSettings, classical, nearest_labels  # noqa: E402
from synood.models.suites import SUITES  # noqa: E402
from synood.method.scores import energy  # noqa: E402
from synood.method.synthesis import boundary_score, ood_loss, optimise_noise  # noqa: E402

COMMAND = "python bench/offline_generator.py"
SEED = 0
ASSETS = ROOT / "assets" / "offline-generator"
SHOWN = ("squirrel", "football", "palace", "daisy")  # rows of before-after.png
MADE_UP = (("sofa", "carpet"), ("ocean", "beach", "sky"))  # the labels of contexts.png beside the photo's own
TILE = 224


def old_canvas(classifier, image: Image.Image) -> classical.Canvas:
    """The generator before issue 13 (cam-telea-noise): Telea erase at 256 px, the same seeded noise field."""
    source, base, mask, predicted = classical.erase_main_object(classifier, image, 256)
    noise = torch.randn(3, classical.NOISE_CELLS, classical.NOISE_CELLS,
                        generator=torch.Generator().manual_seed(SEED)) * classical.NOISE_SCALE
    return classical.Canvas(source, base, mask, noise, predicted)


def timed(fn):
    """(wall s, process CPU s, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run(canvas: classical.Canvas, classifier, settings: SynthesisConfig, step: float) -> dict:
    """The noise optimisation of one canvas and the classifier's view before and after."""
    with torch.no_grad():
        before = classifier.logits(canvas.source[None]).float()
    history = optimise_noise(canvas.render, canvas.noise, classifier.logits, settings.iterations, step,
                             settings.loss, settings.m_out)
    with torch.no_grad():
        after = classifier.logits(history[-1].image[None]).float()
    return {"top1": int(before.argmax()), "generated": history[0].predicted, "optimised": history[-1].predicted,
            "e0": energy(before).item(), "e1": history[0].energy, "e2": history[-1].energy,
            "s0": boundary_score(before).item(), "s2": boundary_score(after).item(),
            "loss1": history[0].loss, "loss2": history[-1].loss, "image": history[-1].image}


def context_share(generator: classical.ClassicalGenerator, image: Image.Image, labels) -> tuple[float, float]:
    """Share of the filled pixels (at FILL_SIZE) whose exact colour occurs among the context-ranked clear
    pixels: context fill, plain shift-map from every clear pixel."""
    source, fill, predicted = generator.replace(image, labels)
    cam = classical.class_maps(generator.classifier, source, [predicted])[0]
    plain = classical.known_pixels(fill.region, cam, np.ones_like(fill.context))
    size = (classical.FILL_SIZE, classical.FILL_SIZE)
    lab = classical.lab_image(cv2.resize(np.asarray(to_pil(source)), size, interpolation=cv2.INTER_AREA))

    def small(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0

    region, known = small(fill.region), small(fill.known)
    colours = {tuple(c) for c in lab[known].reshape(-1, 3)}
    shares = []
    for offered in (known, small(plain)):
        out = classical.shift_map(lab, offered)[region & ~offered]
        shares.append(float(np.mean([tuple(c) in colours for c in out.reshape(-1, 3)])))
    return shares[0], shares[1]


def captioned(images: list[Image.Image], captions: list[str]) -> np.ndarray:
    """One row of TILE-px tiles, each with its caption on a white band above it."""
    tiles = []
    for image, caption in zip(images, captions):
        tile = Image.new("RGB", (TILE, TILE + 30), "white")
        tile.paste(image.convert("RGB").resize((TILE, TILE), Image.BICUBIC), (0, 30))
        draw = ImageDraw.Draw(tile)
        for line, text in enumerate(wrap(caption, 36)[:2]):
            draw.text((4, 2 + 13 * line), text, fill="black")
        tiles.append(np.asarray(tile))
    return np.concatenate(tiles, axis=1)


def wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def main() -> None:
    parser = argparse.ArgumentParser(description="Old vs new offline generator on the packaged ID photos.")
    parser.add_argument("--no-images", action="store_true", help="do not rewrite assets/offline-generator/")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    print(f"$ {COMMAND}" + "".join(f" {a}" for a in sys.argv[1:]))
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; OpenCV {cv2.__version__}; "
          "torch 1 thread\n")
    offline = SUITES["offline"].components
    device = torch.device("cpu")
    generator = classical.load(offline["generator"], device, "float32")
    labeller = nearest_labels.load(offline["labeller"], device, "float32")
    classifier = generator.classifier
    names = classifier.class_names
    settings = SynthesisConfig()
    step = generator.step_size
    chosen = photos.photos("id")
    images = {p.name: Image.open(p.path).convert("RGB") for p in chosen}
    contexts = {name: labeller.context(image) for name, image in images.items()}
    rows, outputs = [], {}
    print(f"{'photo':<10} | {'labels':<44} | {'old CPU s':>9} | {'new wall/CPU s':>14} | top-1 source -> old -> new")
    for index, (name, image) in enumerate(images.items()):
        labels = contexts[name]
        old_wall, old_cpu, old = timed(partial(old_canvas, classifier, image))
        new_wall, new_cpu, new = timed(partial(generator.prepare, image, GenerationSettings(seed=SEED, context=tuple(labels))))
        other = contexts[chosen[(index + 1) % len(chosen)].name]
        swapped = generator.prepare(image, GenerationSettings(seed=SEED, context=tuple(other)))
        region = new.mask[0] >= 1
        change = (swapped.base - new.base).abs()[:, region].mean().item() * 255
        with torch.no_grad():
            losses = [ood_loss(classifier.logits(c.render(c.noise)[None]).float(), settings.loss, settings.m_out).item()
                      for c in (new, swapped)]
        shares = context_share(generator, image, labels)
        r_old, r_new = run(old, classifier, settings, step), run(new, classifier, settings, step)
        rows.append({"name": name, "old": r_old, "new": r_new, "old_time": (old_wall, old_cpu),
                     "new_time": (new_wall, new_cpu), "change": change, "loss_change": abs(losses[0] - losses[1]),
                     "shares": shares})
        outputs[name] = (to_pil(old.render(old.noise)), to_pil(new.render(new.noise)))
        print(f"{name:<10} | {', '.join(labels)[:44]:<44} | {old_cpu:9.2f} | {new_wall:6.2f} / {new_cpu:5.2f} | "
              f"{names[r_new['top1']]} -> {names[r_old['optimised']]} -> {names[r_new['optimised']]}", flush=True)
    summary(rows, settings, step)
    if not args.no_images:
        pictures(images, contexts, outputs, generator)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}; total {time.perf_counter() - began:.0f} s")


def summary(rows: list[dict], settings: SynthesisConfig, step: float) -> None:
    n = len(rows)

    def share(kind: str, test) -> str:
        return f"{100 * sum(bool(test(r[kind])) for r in rows) / n:5.1f} %"

    def mean(kind: str, key: str) -> str:
        return f"{np.mean([r[kind][key] for r in rows]):7.2f}"

    m = settings.m_out
    print(f"\n{n} ID photos, {settings.iterations} iterations, step {step:g}, "
          f"loss {settings.loss}, m_out {m:g}")
    print(f"{'':<52} | {'old (CAM + Telea, 256 px)':>26} | {'new (context shift-map, 224 px)':>31}")
    lines = [
        ("prepare, median wall s", lambda k: f"{np.median([r[k + '_time'][0] for r in rows]):7.2f}"),
        ("prepare, median process CPU s", lambda k: f"{np.median([r[k + '_time'][1] for r in rows]):7.2f}"),
        ("top-1 changed after generation (iteration 1)", lambda k: share(k, lambda r: r["generated"] != r["top1"])),
        ("top-1 changed after the noise optimisation", lambda k: share(k, lambda r: r["optimised"] != r["top1"])),
        ("mean energy E: source", lambda k: mean(k, "e0")),
        ("mean energy E: generated (iteration 1)", lambda k: mean(k, "e1")),
        ("mean energy E: optimised (last iteration)", lambda k: mean(k, "e2")),
        ("mean s = mean(logits) - logsumexp: source", lambda k: mean(k, "s0")),
        ("mean s: optimised", lambda k: mean(k, "s2")),
        ("in the band |s - m_out| <= 1 after optimisation", lambda k: share(k, lambda r: abs(r["s2"] - m) <= 1)),
        (f"energy E >= m_out - 1 = {m - 1:g} after optimisation", lambda k: share(k, lambda r: r["e2"] >= m - 1)),
        ("mean loss: iteration 1 -> last", lambda k: f"{np.mean([r[k]['loss1'] for r in rows]):.2f} -> "
                                                   f"{np.mean([r[k]['loss2'] for r in rows]):.2f}"),
    ]
    for title, cell in lines:
        print(f"{title:<52} | {cell('old'):>26} | {cell('new'):>31}")
    print(f"{'other labels: mean |pixel change| in the region (0-255)':<52} | {0:>26.1f} | "
          f"{np.mean([r['change'] for r in rows]):>31.1f}")
    print(f"{'other labels: mean |loss change| (generation)':<52} | {0:>26.3f} | "
          f"{np.mean([r['loss_change'] for r in rows]):>31.3f}")
    ctx, plain = np.mean([r["shares"][0] for r in rows]), np.mean([r["shares"][1] for r in rows])
    print(f"context share of the fill (exact colour among the context-ranked pixels): context fill "
          f"{100 * ctx:.1f} %, plain shift-map from all clear pixels {100 * plain:.1f} % (upper bound)")


def pictures(images: dict, contexts: dict, outputs: dict, generator: classical.ClassicalGenerator) -> None:
    """The README's comparison images, composed from the run's own outputs."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    rows = [captioned([images[n], *outputs[n]],
                      [f"source: {n}", "old: CAM + Telea + noise", "new, labels: " + ", ".join(contexts[n])])
            for n in SHOWN if n in images]
    Image.fromarray(np.concatenate(rows, axis=0)).save(ASSETS / "before-after.png", optimize=True)
    name = SHOWN[0]
    variants = [tuple(contexts[name]), *MADE_UP]
    generated = [generator.generate(images[name], seed=SEED, context=labels) for labels in variants]
    row = captioned([images[name], *generated], [f"source: {name}"] + ["labels: " + ", ".join(v) for v in variants])
    Image.fromarray(row).save(ASSETS / "contexts.png", optimize=True)
    print(f"\nwrote {ASSETS / 'before-after.png'} and {ASSETS / 'contexts.png'}")


if __name__ == "__main__":
    main()
