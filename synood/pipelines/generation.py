"""Stage 1 end to end: an ID image -> context labels -> prompt -> energy-guided noise optimisation -> a
near-boundary image, one at a time (the app) or over a selection, resumable and sharded (the CLI).

Every item's seed derives from the base seed and the item's id, so an item comes out the same
whichever process, shard or rerun generates it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
from PIL import Image

from synood.data import storage
from synood.config import SynthesisConfig
from synood.data.images import load_image, to_pil
from synood.data.manifest import SETTINGS, Manifest
from synood.method.finetune import pair_negatives
from synood.method.prompts import context_prompt
from synood.method.scores import energy
from synood.data.selection import Selected
from synood.models.interfaces import Canvas, ContextLabeller, EnergyClassifier, GenerationSettings, Generator
from synood.method.synthesis import Iteration, noise_steps
from synood.errors import UserError

if TYPE_CHECKING:  # the detector module imports open_clip: only the type is needed here
    from synood.pipelines.detect import Detector


class GenerationError(UserError, ValueError):
    """A generation folder or setting that cannot be used; the message says why and what to do."""


def step_divisor(settings: SynthesisConfig) -> int:
    """What r*rho is divided by: 1 under the paper's per-image step, B under step_rule "batch" (the released
    code averages the loss over a batch of B images, so each image gets 1/B of its own gradient). SynthesisConfig
    checks both settings when they are set."""
    return settings.batch_size if settings.step_rule == "batch" else 1


def step_size(generator: Generator, settings: SynthesisConfig) -> float:
    """The step each image's noise moves by per unit of its own gradient: r*rho (the configured one, or the
    generator's own when none is set), divided by step_divisor."""
    divisor = step_divisor(settings)
    return (generator.step_size if settings.step_size is None else settings.step_size) / divisor


def describe_step(generator: Generator, settings: SynthesisConfig) -> str:
    """The applied noise step and the rule that gave it, in words (CLI log, Noise tab)."""
    step, divisor = step_size(generator, settings), step_divisor(settings)
    if settings.step_rule == "image":
        return f"noise step {step:g} x each image's gradient (per image, as in the paper)"
    return (f"noise step {step * divisor:g}/{divisor} = {step:g} x each image's gradient "
            f"(mean loss over a batch of {divisor}, as in the released code)")


def prepare(generator: Generator, image: Image.Image, prompt: str, seed: int, settings: SynthesisConfig,
            context: Sequence[str] = ()) -> Canvas:
    """The generator's canvas for one image with the configured diffusion and gradient settings; `context`
    is the labels `prompt` was built from (read by generators without a text encoder)."""
    return generator.prepare(image, GenerationSettings(
        prompt=prompt, seed=seed, context=tuple(context), gradient=settings.gradient,
        checkpointing=settings.checkpointing, strength=settings.strength, steps=settings.steps,
        guidance=settings.guidance))


def iterations(generator: Generator, classifier: EnergyClassifier, canvas: Canvas, settings: SynthesisConfig) -> Iterator[Iteration]:
    """The noise optimisation of one canvas, one scored iteration at a time."""
    return noise_steps(canvas.render, canvas.noise, classifier.logits, settings.iterations,
                       step_size(generator, settings), settings.loss, settings.m_out)


def source_energy(classifier: EnergyClassifier, canvas: Canvas) -> tuple[float, int]:
    """The classifier's energy and top class for the canvas's source image (the "before")."""
    with torch.no_grad():
        logits = classifier.logits(canvas.source[None]).float()
    return energy(logits).item(), int(logits.argmax())


def seed_for(base: int, item_id: str) -> int:
    """A 31-bit seed for one item, fixed by the base seed and the item's id."""
    return int.from_bytes(hashlib.sha256(f"{base}:{item_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def image_name(item: Selected) -> str:
    """Where an item's synthetic image goes, relative to the generation folder (unique per id)."""
    digest = hashlib.sha256(item.id.encode()).hexdigest()[:8]
    return f"images/{item.cls}/{Path(item.id).stem}-{digest}.png"


@dataclass
class Parts:
    """The loaded components a batch generation needs; `detector` pairs images with negative labels."""

    generator: Generator
    classifier: EnergyClassifier
    labeller: ContextLabeller
    detector: Detector


def generate_item(item: Selected, parts: Parts, settings: SynthesisConfig,
                  callback: Callable[[Iteration], None] | None = None) -> tuple[dict, Image.Image]:
    """One selected image through the whole of stage 1: its manifest record and its synthetic image."""
    source = load_image(item.source)
    context = parts.labeller.context(source)
    prompt = context_prompt(context, settings.prompt_template, settings.context_max_chars)
    seed = seed_for(settings.seed, item.id)
    canvas = prepare(parts.generator, source, prompt, seed, settings, context)
    energy_before, predicted_before = source_energy(parts.classifier, canvas)
    history = []
    for step in iterations(parts.generator, parts.classifier, canvas, settings):
        history.append(step)
        if callback:
            callback(step)
    final = history[-1]
    synthetic = to_pil(final.image)
    scored = parts.detector.score([source, synthetic])
    nearest, similarity = pair_negatives(scored["raw"][1:], parts.detector.negative_raw)  # as training pairs it
    best = int(nearest[0])
    names = parts.classifier.class_names
    record = {
        "id": item.id, "source": item.source, "class": item.cls, "class_index": item.class_index,
        "class_name": item.class_name, "image": image_name(item), "context": context, "prompt": prompt, "seed": seed,
        "iterations": [{"index": s.index, "loss": s.loss, "energy": s.energy, "id_score": s.id_score,
                        "predicted": s.predicted} for s in history],
        "energy_before": energy_before, "energy_after": final.energy,
        "id_score_before": float(scored["neglabel"][0]), "id_score_after": float(scored["neglabel"][1]),
        "negative_label": parts.detector.negatives[best].word, "negative_similarity": float(similarity[0]),
        "predicted_before": names[predicted_before], "predicted_after": names[final.predicted],
        "generator": parts.generator.info.name, "classifier": parts.classifier.info.name,
    }
    return record, synthetic


def settings_record(selection: str | os.PathLike, components: dict[str, str], settings: SynthesisConfig) -> dict:
    """What fixes a generation's output: checked on every resume so a folder never mixes settings."""
    return {"selection": str(Path(selection).resolve()), "components": components,
            "synthesis": dataclasses.asdict(settings)}


def check_settings(folder: Path, expected: dict) -> None:
    """Record the settings in a new folder; refuse a folder generated with different ones."""
    path = folder / SETTINGS
    if not path.exists():
        storage.write_text(path, json.dumps(expected, indent=2) + "\n")
        return
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GenerationError(f"{path}: unreadable ({exc}); move it away to start this folder afresh") from None
    changed = []
    for key in ("components", "synthesis", "selection"):
        want, have = expected[key], found.get(key)
        if want == have:
            continue
        if isinstance(want, dict) and isinstance(have, dict):
            differ = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
            changed.append(f"{key} ({', '.join(differ)})")
        else:
            changed.append(key)
    if changed:
        raise GenerationError(f"{folder} was generated with other settings: {'; '.join(changed)} differ. "
                              "Resume with the same settings, or choose a new --out folder.")


def shard(items: Sequence[Selected], rank: int, world: int) -> list[Selected]:
    """This process's share: every world-th item from position rank, fixed by the selection alone."""
    return list(items[rank::world])


def generate(items: Sequence[Selected], folder: str | os.PathLike, parts: Parts, settings: SynthesisConfig,
             rank: int = 0, world: int = 1, log: Callable[[str], None] = lambda message: None,
             merge_every: float = 300.0) -> dict[str, int]:
    """Generate this process's shard of `items` into `folder`, skipping finished ones, merging the
    manifest every `merge_every` seconds (so the browser sees a long run's progress) and at the end.
    Returns counts: done now, skipped (finished before), failed, and merged in all."""
    folder = Path(folder)
    manifest = Manifest(folder)
    finished = manifest.done()
    share = shard(items, rank, world)
    mine = [item for item in share if item.id not in finished]
    counts = {"generated": 0, "skipped": len(share) - len(mine), "failed": 0}
    order, merged_at = [item.id for item in items], time.monotonic()
    log(f"[{rank}] {describe_step(parts.generator, settings)}")
    for number, item in enumerate(mine, 1):
        def report(step: Iteration) -> None:
            log(f"[{rank}] {number}/{len(mine)} {item.id}: iteration {step.index + 1}/{settings.iterations} "
                f"loss {step.loss:.4f} energy {step.energy:.3f} ID score {step.id_score:.3f}")

        try:
            record, synthetic = generate_item(item, parts, settings, report)
        except (OSError, ValueError) as exc:  # an unreadable source: reported, the run goes on
            counts["failed"] += 1
            log(f"[{rank}] skipped {item.id}: {exc}")
            continue
        with storage.atomic_path(folder / record["image"]) as tmp:
            synthetic.save(tmp, format="PNG")
        manifest.append(rank, record)  # after the image: a listed item always has its file
        counts["generated"] += 1
        if time.monotonic() - merged_at > merge_every:
            manifest.merge(order)
            merged_at = time.monotonic()
    counts["merged"] = manifest.merge(order, rank)
    return counts
