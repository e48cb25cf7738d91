"""2-D maps of image features: PCA (instant) and UMAP (seconds). The app draws them (ui/featuremap_view.py).

UMAP gets its k-nearest-neighbour graph from scikit-learn instead of building one with pynndescent, whose
numba JIT is most of a cold fit (up to EXACT_KNN_POINTS points: beyond, the exact graph's N^2 distances cost more
and UMAP builds its own approximate one; bench/featuremap_scale.py); numba's own cache lives in $NUMBA_CACHE_DIR (default $SYNOOD_HOME/numba). The
first fit in a process still compiles UMAP's own numba code: warm_up() does that ahead, on a tiny problem.
Embeddings are kept in memory keyed by the features' bytes and the parameters, so redrawing a map is instant.
Torch-free: features may be NumPy arrays or CPU tensors. Figures: bench/featuremap.py.
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import OrderedDict

import numpy as np

from synood.config import cache_home

MIN_UMAP_POINTS = 4  # below this a neighbour graph says nothing: PCA only
NEIGHBOURS = 15  # UMAP's n_neighbors; up to this many points, each point's neighbours are all the others
EXACT_KNN_POINTS = 20_000  # up to this many points the kNN graph is scikit-learn's exact one, beyond UMAP's own
_CACHE_SIZE = 16

_embeddings: OrderedDict[tuple, np.ndarray] = OrderedDict()
_embeddings_lock = threading.Lock()
_umap_lock = threading.Lock()  # one fit at a time: numba compiles once, and 2 cores are no use to two fits
_warm = False
_warm_thread: threading.Thread | None = None
_warm_lock = threading.Lock()


def as_matrix(features: object) -> np.ndarray:
    """(N, D) features (array or CPU tensor) as a C-contiguous float32 array."""
    return np.ascontiguousarray(np.asarray(features, dtype=np.float32))


def cap_indices(count: int, cap: int) -> np.ndarray:
    """`min(count, cap)` indices spread evenly over range(count): deterministic, and every part of a sorted folder
    (every class) keeps its share."""
    if count <= cap:
        return np.arange(count)
    return np.linspace(0, count - 1, max(cap, 0)).round().astype(int)


def pca_2d(features: object) -> np.ndarray:
    """(N, 2) coordinates on the top two principal components of the centred features; each axis's sign is set so
    its largest loading is positive. From the D x D scatter matrix (about 40 ms for 5k x 512; encoders are at most
    a few thousand wide). An axis with no variance (fewer than 3 distinct points) stays at 0."""
    x = as_matrix(features).astype(np.float64)
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out
    x -= x.mean(axis=0)
    values, vectors = np.linalg.eigh(x.T @ x)  # ascending
    for axis in range(min(2, len(values))):
        value, component = values[-1 - axis], vectors[:, -1 - axis]
        if value <= 1e-10 * values[-1] or value <= 0:
            break
        out[:, axis] = x @ (component * np.sign(component[np.argmax(np.abs(component))]))
    return out


def _umap():
    """The umap module, with numba's cache pointed at a writable folder before numba is first imported."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_home() / "numba"))
    import umap

    return umap


def _fit(x: np.ndarray, n_neighbors: int, min_dist: float, seed: int, n_epochs: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    umap = _umap()
    k = min(n_neighbors, len(x) - 1)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # euclidean on unit vectors ~ cosine
    graph = {}
    if len(x) <= EXACT_KNN_POINTS:  # beyond, the exact graph's N^2 distances cost more than pynndescent's compile
        distances, indices = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)  # each point its own 1st neighbour
        graph = {"precomputed_knn": (indices, distances.astype(np.float32))}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(n_jobs value|knn_search_index).*")
        reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, random_state=seed, n_jobs=1, n_epochs=n_epochs,
                            **graph)
        return reducer.fit_transform(x).astype(np.float64)


def warm_up() -> None:
    """Compile UMAP's numba code once per process on a tiny problem (about 7 s on 2 idle cores with numba's cache
    filled, about 20 s without), so that a map whose images are being encoded meanwhile pays only for its own fit."""
    global _warm
    with _umap_lock:
        if not _warm:
            points = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
            _fit(points, 5, 0.1, 0, 10)
            _warm = True


def warm_up_in_background() -> None:
    """Start warm_up() in a daemon thread, once per process (later calls return at once)."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=warm_up, name="umap-warm-up", daemon=True)
            _warm_thread.start()


def umap_compiled() -> bool:
    """Whether UMAP's numba code is compiled in this process, so that a fit pays only for itself."""
    return _warm


def umap_key(features: object, n_neighbors: int = NEIGHBOURS, min_dist: float = 0.1, seed: int = 0,
             n_epochs: int = 200) -> tuple:
    """The in-memory cache key: a hash of the features' bytes and shape, and the parameters."""
    x = as_matrix(features)
    return hashlib.sha256(x.tobytes()).hexdigest(), x.shape, n_neighbors, float(min_dist), seed, n_epochs


def cached_umap(key: tuple) -> np.ndarray | None:
    """The embedding for `key` if it is in memory (and now the most recently used), else None."""
    with _embeddings_lock:
        if key in _embeddings:
            _embeddings.move_to_end(key)
            return _embeddings[key]
    return None


def umap_2d(features: object, n_neighbors: int = NEIGHBOURS, min_dist: float = 0.1, seed: int = 0,
            n_epochs: int = 200) -> np.ndarray:
    """(N, 2) UMAP coordinates (read-only; the same array again for the same features and parameters).
    n_neighbors is clamped to N - 1; 200 epochs is UMAP's own choice for large data (it picks 500 below 10k
    points: twice the time, for no gain in cluster purity). Fewer than MIN_UMAP_POINTS points: ValueError."""
    x = as_matrix(features)
    if len(x) < MIN_UMAP_POINTS:
        raise ValueError(f"UMAP needs at least {MIN_UMAP_POINTS} points, got {len(x)}")
    key = umap_key(x, n_neighbors, min_dist, seed, n_epochs)
    found = cached_umap(key)
    if found is not None:
        return found
    with _umap_lock:
        embedding = _fit(x, n_neighbors, min_dist, seed, n_epochs)
    embedding.flags.writeable = False
    with _embeddings_lock:
        _embeddings[key] = embedding
        while len(_embeddings) > _CACHE_SIZE:
            _embeddings.popitem(last=False)
    return embedding
