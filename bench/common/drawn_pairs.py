"""Drawn generations: a training folder of plain coloured shapes, their "synthetic" images and a manifest in
`synood generate`'s format. Test data for the tests and bench/pairs.py, not model results."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

from PIL import Image, ImageDraw

from synood.data.manifest import MANIFEST

CLASSES = [("n01440764", 0, "tench"), ("n02102040", 217, "English springer"), ("n03000684", 491, "chain saw"),
           ("n03417042", 569, "garbage truck")]
CONTEXT = ["water", "hand", "grass", "sky", "road", "fence", "tree", "table"]
NEGATIVES = ["sawdust", "nebula", "paperwork", "moss", "velvet", "glacier", "ribbon"]


def draw_image(path: Path, index: int, synthetic: bool) -> None:
    """A plain test image: a coloured background and a shape that differ with the index."""
    rng = random.Random(index * 2 + synthetic)
    size = (512, 512) if synthetic else (500, 375)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    box = [rng.randrange(size[0] // 2), rng.randrange(size[1] // 2), size[0] * 3 // 4, size[1] * 3 // 4]
    ImageDraw.Draw(image).ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def record(index: int, source: Path, image: str) -> dict:
    """One manifest line in `synood generate`'s format, with values drawn from a seeded generator."""
    rng = random.Random(index)
    wnid, class_index, name = CLASSES[index % len(CLASSES)]
    before = round(rng.uniform(-12, -6), 4)
    after = round(before + rng.uniform(0, 5), 4)
    losses = sorted((round(rng.uniform(1, 15), 3) for _ in range(3)), reverse=True)
    energies = [round(before + (after - before) * (i + 1) / 3, 4) for i in range(3)]
    context = rng.sample(CONTEXT, 2)
    return {"id": f"{wnid}/img{index}.JPEG", "source": str(source), "class": wnid, "class_index": class_index,
            "class_name": name, "image": image, "context": context,
            "prompt": "A photo only remain " + ", ".join(context), "seed": 1000 + index,
            "iterations": [{"index": i, "loss": losses[i], "energy": energies[i], "id_score": round(0.9 - 0.2 * i, 3),
                            "predicted": class_index} for i in range(3)],
            "energy_before": before, "energy_after": after, "id_score_before": round(rng.uniform(0.6, 1), 4),
            "id_score_after": round(rng.uniform(0, 0.6), 4), "negative_label": NEGATIVES[index % len(NEGATIVES)],
            "negative_similarity": round(rng.uniform(0.1, 0.4), 4), "predicted_before": name,
            "predicted_after": CLASSES[(index + 1) % len(CLASSES)][2], "generator": "test images",
            "classifier": "none (test data)"}


def pair_paths(folder: Path, index: int) -> tuple[Path, str]:
    """Where pair `index` keeps its source (absolute) and its synthetic image (relative to the manifest)."""
    wnid = CLASSES[index % len(CLASSES)][0]
    return folder / "train" / wnid / f"img{index}.JPEG", f"images/{wnid}/img{index}-{index:08x}.png"


def write_generation(folder: Path, count: int, distinct: int | None = None) -> Path:
    """A generation folder with `count` pairs: a training folder of sources, images/ and manifest.jsonl.
    Only `distinct` image pairs are drawn; the others are hard links to them (same bytes, their own paths)."""
    distinct = count if distinct is None else min(count, distinct)
    lines = []
    for index in range(count):
        source, image = pair_paths(folder, index)
        if index < distinct:
            draw_image(source, index, synthetic=False)
            draw_image(folder / image, index, synthetic=True)
        else:
            first_source, first_image = pair_paths(folder, index % distinct)
            for made, original in ((source, first_source), (folder / image, folder / first_image)):
                made.parent.mkdir(parents=True, exist_ok=True)
                os.link(original, made)
        lines.append(json.dumps(record(index, source, image)))
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")
    return folder
