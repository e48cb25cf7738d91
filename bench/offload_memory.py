"""Memory of the tiny twins, measured, beside synood.models.memory's estimate; and the paper models' arithmetic.

Each tiny component loads in a fresh process (after its libraries are imported, so their import is not counted)
through `Suite.get`, then runs once (an image encoded, logits, a labelled image, a 2-step generation). Figures:
- tensors: the bytes of every parameter and buffer the loaded component holds, over parameters x 4 (the ratio
  MARGIN must cover);
- RSS growth: the process's resident memory at its peak (sampled every 2 ms) over the baseline;
- CUDA peak: torch.cuda.max_memory_allocated, when a GPU exists, without and with --offload.
Then, for the paper's models, parameters x bytes per dtype, and what the GPU must hold with --offload (the largest
sub-model for diffusers' model offload). Run: .venv/bin/python bench/offload_memory.py [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLES = ("encoder", "classifier", "labeller", "generator")
LIBRARIES = {"encoder": "synood.models.clip", "classifier": "synood.models.classifier",
             "labeller": "synood.models.labeller", "generator": "synood.models.generator"}


def modules(component: object) -> list:
    """The torch modules a loaded component holds (its attributes, and a diffusers pipeline's parts)."""
    import torch

    found = []
    for value in vars(component).values():
        if isinstance(value, torch.nn.Module):
            found.append(value)
        elif hasattr(value, "components"):  # a diffusers pipeline
            found += [m for m in value.components.values() if isinstance(m, torch.nn.Module)]
    unique = {id(m): m for m in found}
    return list(unique.values())


def tensor_bytes(component: object) -> int:
    """Bytes of every distinct parameter and buffer the component's modules hold."""
    seen, total = set(), 0
    for module in modules(component):
        for t in [*module.parameters(), *module.buffers()]:
            if t.device.type != "meta" and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


def use(role: str, component: object) -> None:
    """One real call of the component on a small plain image."""
    import torch
    from PIL import Image

    image = Image.new("RGB", (64, 64), (120, 80, 40))
    if role == "encoder":
        component.encode_image(component.preprocess([image]))  # type: ignore[attr-defined]
    elif role == "classifier":
        with torch.no_grad():
            component.logits(torch.rand(1, 3, 64, 64))  # type: ignore[attr-defined]
    elif role == "labeller":
        component.answer(image)  # type: ignore[attr-defined]
    else:
        component.generate(image, "a photo", steps=2)  # type: ignore[attr-defined]


def child(role: str, offload: bool, device: str) -> dict:
    """Load and use one tiny component in this process; its figures."""
    import importlib

    import psutil
    import torch

    from synood.models import memory, suites

    importlib.import_module(LIBRARIES[role])
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    suite = suites.Suite(suites.SUITES["tiny"], device=device, offload=offload)
    decided = suite.plan(role)
    component = suite.get(role)
    held = tensor_bytes(component)
    use(role, component)
    done.set()
    sampler.join()
    cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    assert decided.footprint is not None
    return {"role": role, "offload": offload, "device": device, "dtype": decided.dtype,
            "parameters": decided.footprint.parameters, "tensor_bytes": held,
            "tensor_ratio": held / (decided.footprint.parameters * memory.BYTES[decided.dtype]),
            "rss_growth": peak[0] - baseline, "cuda_peak": cuda,
            "estimate": decided.footprint.estimate(decided.dtype),
            "gpu_need": decided.needs.get("cuda")}


def measure(role: str, offload: bool, device: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", role, "--device", device]
                         + (["--offload"] if offload else []), capture_output=True, text=True, check=True,
                         env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def paper_table() -> list[dict]:
    """Parameters x bytes per dtype for the paper's models, and the GPU need under --offload."""
    from synood.models import memory, suites

    rows = []
    for role in ROLES:
        spec = suites.SUITES["paper"].components[role]
        known = memory.KNOWN[spec.family, spec.model]
        total = sum(known.parts.values())
        counted = memory.Footprint(known.parts, known.source)
        row = {"role": role, "model": spec.describe(), "parameters": total, "parts": known.parts,
               **{dtype: total * n for dtype, n in memory.BYTES.items()},
               "estimates": counted.estimates()}
        if spec.family == "diffusers":
            largest = max(known.parts.values())
            row["offload_gpu_float16"] = largest * 2
            row["offload_gpu_estimate"] = counted.estimate("float16", largest)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=ROLES)
    parser.add_argument("--offload", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", metavar="FILE", help="also write every figure here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.offload, args.device)))
        return 0
    import torch

    from synood.models.memory import MARGIN, OVERHEAD

    modes = [False, True] if torch.cuda.is_available() else [False]
    rows = [measure(role, offload, "auto") for role in ROLES for offload in modes]
    mb = 2**20
    print(f"Tiny twins ({'CUDA' if torch.cuda.is_available() else 'CPU only: no GPU, no offload peak'}); "
          f"estimate = parameters x bytes x {1 + MARGIN:g} + {OVERHEAD // mb} MB")
    print("| component | offload | dtype | parameters | tensors / (params x bytes) | RSS growth, peak | "
          "CUDA peak allocated | estimate |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cuda = f"{r['cuda_peak'] / mb:.1f} MB" if r["cuda_peak"] is not None else "no GPU"
        print(f"| {r['role']} | {'on' if r['offload'] else 'off'} | {r['dtype']} | {r['parameters']:,} | "
              f"{r['tensor_ratio']:.3f} | {r['rss_growth'] / mb:.1f} MB | {cuda} | {r['estimate'] / mb:.0f} MB |")
    paper = paper_table()
    print("\nThe paper's models: parameters x bytes per dtype (weights only, before the margin)")
    print("| component | parameters | float32 | bfloat16 / float16 | estimate float32 / 16-bit | "
          "GPU need with --offload (float16; estimate) |")
    print("|---|---:|---:|---:|---:|---:|")
    gib = 2**30
    for r in paper:
        offload = (f"{r['offload_gpu_float16'] / gib:.2f} GB, the UNet ({r['offload_gpu_estimate'] / gib:.2f} GB)"
                   if "offload_gpu_float16" in r
                   else "what fits; the rest in RAM" if r["role"] == "labeller" else "not offloaded")
        print(f"| {r['model']} | {r['parameters']:,} | {r['float32'] / gib:.2f} GB | {r['float16'] / gib:.2f} GB | "
              f"{r['estimates']['float32'] / gib:.2f} / {r['estimates']['float16'] / gib:.2f} GB | {offload} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"tiny": rows, "paper": paper}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
