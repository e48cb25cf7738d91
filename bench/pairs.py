"""Synthetic pairs browser: a 10,000-pair manifest, parsed, filtered, sorted and paged, with cached thumbnails.

Each figure comes with the plain way of doing the same work, measured in the same run:
- filtering: the in-memory manifest (cached by path, size and mtime) vs. reading the manifest afresh each time;
- the first page: thumbnails built for that page only vs. building every pair's thumbnail up front
  (measured on a subset, extrapolated to all pairs);
- handing a page to Gradio: the cached JPEG files' paths (Gradio hashes and copies them) vs. PIL images
  (Gradio encodes each one to WebP first).
The images are plain test drawings (tests/data/test_pairs.py): ImageNet-sized JPEG sources (500 x 375) and 512 x 512
PNG synthetic images, 200 distinct pairs hard-linked to 10,000 paths, so every pair has its own files and key.
Run: .venv/bin/python bench/pairs.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common.drawn_pairs import write_generation  # noqa: E402
from bench.timing import best_of  # noqa: E402
from synood.data import manifest as manifests  # noqa: E402
from ui import thumbnails  # noqa: E402

COUNT, DISTINCT, PAGE, SUBSET = 10_000, 200, 24, 240


def fresh_cache(root: Path) -> None:
    """Point the thumbnail cache at a new, empty folder (SYNOOD_HOME is read on every call)."""
    os.environ["SYNOOD_HOME"] = tempfile.mkdtemp(dir=root, prefix="home-")


def serving(root: Path, page: tuple[manifests.Pair, ...]) -> tuple[float, float]:
    """Seconds for gr.Gallery to take one page (postprocess, then into its cache): as file paths, as PIL images."""
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    import gradio as gr
    from gradio.processing_utils import move_files_to_cache
    from PIL import Image

    gallery = gr.Gallery()
    files = thumbnails.thumbnails(page)

    def hand(items: list) -> None:
        move_files_to_cache(gallery.postprocess(items), gallery, postprocess=True)

    def as_images() -> list:
        loaded = []
        for path in files:
            with Image.open(path) as image:
                loaded.append((image.convert("RGB"), "caption"))
        return loaded

    return (best_of(lambda: hand([(str(path), "caption") for path in files]), 10)[0],
            best_of(lambda: hand(as_images()), 10)[0])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="synood-bench-pairs-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        folder = write_generation(root / "gen", COUNT, distinct=DISTINCT)
        manifest_file = folder / manifests.MANIFEST
        print(f"wrote {COUNT:,} pairs ({DISTINCT} distinct drawings, "
              f"manifest {manifest_file.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")

        parse = best_of(lambda: manifests.parse_manifest(manifest_file), 3)[0]
        manifest = manifests.load_manifest(folder)
        cached = best_of(lambda: manifests.load_manifest(folder), 50)[0]

        def query(loaded: manifests.ParsedManifest) -> manifests.Page:
            chosen = manifests.filter_pairs(loaded.pairs, energy_min=-9.0, energy_max=-4.0, label="moss")
            return manifests.paginate(manifests.sort_pairs(chosen, "energy_after", descending=True), 1, PAGE)

        matched = query(manifest).total
        filter_sort = best_of(lambda: query(manifests.load_manifest(folder)), 10)[0]
        reread = best_of(lambda: query(manifests.parse_manifest(manifest_file)), 3)[0]

        start = time.perf_counter()
        from synood.data import storage  # noqa: F401 (atomic_path's module imports torch: paid once per process)
        storage_import = time.perf_counter() - start

        first_page = manifests.paginate(manifest.pairs, 1, PAGE).pairs
        colds = []
        for _ in range(3):
            fresh_cache(root)
            colds.append(best_of(lambda: thumbnails.thumbnails(first_page), 1)[0])
        cold = min(colds)
        warm = best_of(lambda: thumbnails.thumbnails(first_page), 10)[0]
        turn = best_of(lambda: thumbnails.thumbnails(query(manifests.load_manifest(folder)).pairs), 10)[0]

        serve_paths, serve_images = serving(root, first_page)

        fresh_cache(root)
        subset = manifest.pairs[PAGE:PAGE + SUBSET]
        upfront_subset = best_of(lambda: thumbnails.thumbnails(subset), 1)[0]
        upfront = upfront_subset / SUBSET * COUNT
        cache_bytes = sum(p.stat().st_size for p in thumbnails.thumbnail_dir().rglob("*.jpg"))

    print(f"\n{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; page = {PAGE} pairs; times are best-of-N")
    rows = [
        ("parse the manifest (10,000 lines, json + records)", f"{parse * 1e3:.0f} ms (best of 3)", "", ""),
        ("manifest again, unchanged (stat + in-memory cache)", f"{cached * 1e6:.0f} us (best of 50)", "", ""),
        (f"filter (energy range + label) + sort + page 1: {matched:,} match",
         f"{filter_sort * 1e3:.1f} ms (best of 10)",
         f"{reread * 1e3:.0f} ms: read and parse the manifest afresh, then filter (best of 3)",
         f"{reread / filter_sort:.0f}x"),
        (f"first page, cold: {PAGE} thumbnails built (2 x 160 px JPEG, parallel)", f"{cold * 1e3:.0f} ms (best of 3)",
         f"{upfront:.0f} s: every pair's thumbnail up front "
         f"({upfront_subset:.1f} s for {SUBSET}, x {COUNT / SUBSET:.1f})",
         f"{upfront / cold:.0f}x"),
        ("first page, warm: the same thumbnails from the disk cache", f"{warm * 1e3:.1f} ms (best of 10)", "",
         f"{cold / warm:.0f}x faster than cold"),
        ("a page turn, warm: manifest check + filter + sort + thumbnails", f"{turn * 1e3:.1f} ms (best of 10)", "", ""),
        (f"hand a warm page ({PAGE} thumbnails) to gr.Gallery: file paths", f"{serve_paths * 1e3:.1f} ms (best of 10)",
         f"{serve_images * 1e3:.1f} ms: the same thumbnails as PIL images (best of 10)",
         f"{serve_images / serve_paths:.1f}x"),
        ("one-time import of synood.data.storage (torch) before the first thumbnail write", f"{storage_import:.1f} s",
         "", ""),
    ]
    print("| what | SynOOD Explorer | plain way, same run | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nthumbnail cache: {cache_bytes / SUBSET / 1e3:.1f} kB per pair "
          f"(about {cache_bytes / SUBSET * COUNT / 1e6:.0f} MB for all {COUNT:,})")


if __name__ == "__main__":
    main()
