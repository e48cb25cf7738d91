"""Feature map: PCA and UMAP of 5,000 x 512 clustered unit-norm features, cold and warm.

Each UMAP figure comes with the plain way, `umap.UMAP().fit_transform(x)` (its own pynndescent kNN graph, 500
epochs below 10k points), measured in the same run:
- cold: a fresh process with an empty numba cache (the first map on a new machine), import included;
- numba cache warm: a fresh process again, reusing that cache (the first map after an app restart);
- warm: a second fit in the same process, on new data (every later map);
- the app's way: featuremap.warm_up() compiles UMAP on a tiny problem while images are encoded, then the fit.
Every fit runs in its own child process (`--child`), so each cold figure really is cold. Quality: the share of
each point's 10 nearest map neighbours from its own cluster, beside the same share in the 512-D space.

The first map a person draws (`--first-map`, also part of a full run): 11 points, timed from pressing Draw to the
UMAP, the images' encoding left out. Before: warm_up() starts at Draw, so the fit waits for numba's compile. After: the
tab's opening starts it (featuremap.warm_up_in_background) and the person takes PAUSE s to type the folders.
Run: .venv/bin/python bench/featuremap.py [--first-map]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.timing import best_of  # noqa: E402
from synood.pipelines import featuremap  # noqa: E402

POINTS, DIM, CLUSTERS = 5000, 512, 20
FIRST_POINTS, PAUSE = 11, 15.0  # the newcomer's first map; seconds to type three folders after opening the tab


def clustered(seed: int, points: int = POINTS) -> tuple[np.ndarray, np.ndarray]:
    """`points` unit vectors in CLUSTERS clusters of different spreads, overlapping (a 10-NN purity of 0.86 in the
    512-D space at 5,000 points), and their cluster ids."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLUSTERS, points)
    centres = rng.normal(size=(CLUSTERS, DIM))
    spread = rng.uniform(2.0, 4.0, CLUSTERS)[labels, None]
    x = centres[labels] + spread * rng.normal(size=(points, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def purity(points: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest neighbours that share its cluster."""
    from sklearn.neighbors import NearestNeighbors

    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    return float((labels[neighbours[:, 1:]] == labels[:, None]).mean())


def child(way: str) -> dict:
    """Fits in this fresh process: the first (cold for this process), a second on new data, and for ours a redraw."""
    x, labels = clustered(0)
    other, _ = clustered(1)
    result: dict = {}
    if way == "app":
        start = time.perf_counter()
        featuremap.warm_up()
        result["warm_up"] = time.perf_counter() - start
    start = time.perf_counter()
    if way == "plain":
        import umap

        embedding = umap.UMAP().fit_transform(x)
        result["first"] = time.perf_counter() - start
        result["second"] = best_of(lambda: umap.UMAP().fit_transform(other), 1)[0]
    else:
        embedding = featuremap.umap_2d(x)
        result["first"] = time.perf_counter() - start
        if way == "ours":
            result["second"] = best_of(lambda: featuremap.umap_2d(other), 1)[0]
            result["redraw"] = best_of(lambda: featuremap.umap_2d(x), 20)[0]
    result["purity"] = purity(embedding, labels)
    return result


def first_map(way: str) -> dict:
    """Draw to UMAP for FIRST_POINTS points in this fresh process: warm-up started at Draw ("before") or when the tab
    opened, PAUSE s earlier ("after")."""
    import threading

    x = clustered(2)[0][:FIRST_POINTS]
    if way == "first-after":
        featuremap.warm_up_in_background()
        time.sleep(PAUSE)
    else:
        threading.Thread(target=featuremap.warm_up, daemon=True).start()
    start = time.perf_counter()
    featuremap.umap_2d(x)
    return {"first": time.perf_counter() - start, "compiled_before_draw": way == "first-after"}


def run_child(way: str, numba_cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, __file__, "--child", way], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def first_map_table() -> None:
    """Before/after for the first map, with numba's cache empty (a new machine) and filled (an app restart)."""
    with tempfile.TemporaryDirectory(prefix="synood-bench-first-map-") as tmp:
        found = {}
        for way in ("first-before", "first-after"):
            cache = Path(tmp) / way
            found[way] = run_child(way, cache), run_child(way, cache)  # empty numba cache, then the same one filled
    (before_cold, before_cached), (after_cold, after_cached) = found["first-before"], found["first-after"]
    print(f"\nFirst map: {FIRST_POINTS} points, Draw to UMAP (encoding left out); after: warm-up started when the tab "
          f"opened, {PAUSE:.0f} s before Draw\n")
    print("| numba cache | before: warm-up starts at Draw | after: warm-up starts when the tab opens | ratio |\n"
          "|---|---|---|---|")
    for name, before, after in (("empty (a new machine)", before_cold, after_cold),
                                ("filled (an app restart)", before_cached, after_cached)):
        print(f"| {name} | {before['first']:.1f} s | {after['first']:.1f} s | "
              f"{before['first'] / max(after['first'], 1e-3):.1f}x |")


def main() -> None:
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    if sys.argv[1:2] == ["--first-map"]:
        first_map_table()
        return
    x, labels = clustered(0)
    pca = best_of(lambda: featuremap.pca_2d(x), 5)[0]
    space = purity(x, labels)
    with tempfile.TemporaryDirectory(prefix="synood-bench-featuremap-") as tmp:
        runs = {}
        for way in ("ours", "plain"):
            cache = Path(tmp) / way
            runs[way] = run_child(way, cache), run_child(way, cache)  # empty numba cache, then the same one warm
        app = run_child("app", Path(tmp) / "ours")
    (ours_cold, ours_cached), (plain_cold, plain_cached) = runs["ours"], runs["plain"]

    print(f"{POINTS:,} x {DIM} features in {CLUSTERS} clusters; one run each unless said")
    rows = [
        ("PCA preview (top 2 eigenvectors of the 512 x 512 scatter matrix)", f"{pca * 1e3:.0f} ms (best of 5)", "",
         ""),
        ("UMAP cold: fresh process, empty numba cache, import included", f"{ours_cold['first']:.1f} s",
         f"{plain_cold['first']:.1f} s", f"{plain_cold['first'] / ours_cold['first']:.1f}x"),
        ("UMAP, fresh process, numba cache warm (an app restart)", f"{ours_cached['first']:.1f} s",
         f"{plain_cached['first']:.1f} s", f"{plain_cached['first'] / ours_cached['first']:.1f}x"),
        ("UMAP warm: second fit in the process, new data", f"{ours_cached['second']:.1f} s",
         f"{plain_cached['second']:.1f} s", f"{plain_cached['second'] / ours_cached['second']:.1f}x"),
        ("the app's way after a restart: warm-up (overlaps image encoding), then the fit",
         f"{app['warm_up']:.1f} s + {app['first']:.1f} s", "", ""),
        ("redraw of the same features (in-memory cache: a hash of 10 MB)", f"{ours_cached['redraw'] * 1e3:.0f} ms "
         "(best of 20)", "", ""),
        (f"map quality: 10-NN cluster purity (512-D space: {space:.3f})", f"{ours_cold['purity']:.3f}",
         f"{plain_cold['purity']:.3f}", ""),
    ]
    print("| what | SynOOD Explorer | plain `umap.UMAP().fit_transform`, same run | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    first_map_table()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(first_map(sys.argv[2]) if sys.argv[2].startswith("first-") else child(sys.argv[2])))
    else:
        main()
