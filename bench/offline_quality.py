"""How good the offline suite is, on photos that ship in packages (synood.photos).

1. The stand-in's two carriers, "conse" (default: images into the sentence space) vs "ridge" (the
   texts into the image space): zero-shot top-5 accuracy of the ID photos (their class among the 5
   ID labels nearest to the image), MCM and NegLabel, and the ridge map's in-sample recovery (a
   class's anchor text lands nearest its own weight row).
2. AUROC and FPR95 (MOS convention) of NegLabel, MCM, MSP and Energy: 12 ID photos of ImageNet
   classes vs 10 OOD photos (textures, astronomy, a painting, documents).
3. Each photo's top-5 ImageNet labels and scores.
Run: .venv/bin/python bench/offline_quality.py   (first run ~2 min: it encodes 81k WordNet words)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synood import metrics, photos  # noqa: E402
from synood.detect import SCORE_TITLES, SCORES, Detector  # noqa: E402
from synood.models import standin  # noqa: E402
from synood.models.suites import SUITES, Suite  # noqa: E402

def auroc_fpr(result: dict[str, torch.Tensor], is_id: torch.Tensor, name: str) -> str:
    m = metrics.evaluate(result[name][is_id], result[name][~is_id])
    return f"AUROC {100 * m.auroc:5.1f}  FPR95 {100 * m.fpr95:5.1f}"


def main() -> None:
    chosen = photos.photos()
    if photos.missing():
        print(f"missing photos (apt-get install opencv-doc): {[p.name for p in photos.missing()]}")
    images = [Image.open(p.path) for p in chosen]
    is_id = torch.tensor([p.split == "id" for p in chosen])
    print(f"photos: {int(is_id.sum())} ID, {int((~is_id).sum())} OOD")
    suite = Suite(SUITES["offline"], device="cpu")
    classifier = suite.classifier

    print("\n1. Stand-in carriers")
    subjects = torch.tensor([classifier.class_names.index(p.subject) for p in chosen if p.split == "id"])
    results = {}
    for carrier in standin.CARRIERS:
        encoder = standin.shared(torch.device("cpu"), torch.float32, carrier)
        start = time.perf_counter()
        detector = Detector(encoder, classifier)
        build = time.perf_counter() - start
        results[carrier] = detector.score(images)
        nearest = (detector.image_features(images)[is_id] @ detector.id_features.T).topk(5).indices
        zero_shot = (nearest == subjects[:, None]).any(dim=1).float().mean().item()
        extra = ""
        if encoder.ridge is not None:
            landed = (encoder.carry(encoder.anchors) @ standin.class_rows(classifier).T).argmax(dim=1)
            extra = f", anchors land on their own row {100 * (landed == torch.arange(len(landed))).float().mean():.1f} %"
        print(f"  {carrier:6s} zero-shot top-5 on ID photos {100 * zero_shot:5.1f} %{extra}; "
              f"detector built in {build:5.1f} s ({len(detector.negatives)} negatives)")
        for name in ("neglabel", "mcm"):
            print(f"         {SCORE_TITLES[name]:8s} {auroc_fpr(results[carrier], is_id, name)}")

    print("\n2. Offline suite (carrier conse), ID vs OOD photos")
    result = results["conse"]
    for name in SCORES:
        print(f"  {SCORE_TITLES[name]:8s} {auroc_fpr(result, is_id, name)}")

    print("\n3. Per photo")
    logits = torch.cat([classifier.logits(classifier.to_tensor(im)[None]).detach() for im in images])
    for i, photo in enumerate(chosen):
        top = logits[i].softmax(-1).topk(5)
        labels = ", ".join(f"{classifier.class_names[j]} {p:.2f}" for p, j in zip(top.values.tolist(), top.indices.tolist()))
        values = " ".join(f"{name}={result[name][i]:.4g}" for name in SCORES)
        print(f"  {photo.split:3s} {photo.name:13s} {values}  top5: {labels}")


if __name__ == "__main__":
    main()
