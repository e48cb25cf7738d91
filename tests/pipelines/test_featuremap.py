"""Feature maps: PCA's known answer, UMAP keeping clusters apart, the in-memory cache, capping and tiny inputs."""
import threading

import numpy as np
import pytest

from synood.pipelines import featuremap


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clusters(count: int, per: int, dim: int = 512, spread: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(count), per)
    return unit(rng.normal(size=(count, dim))[labels] + spread * rng.normal(size=(len(labels), dim))), labels


def knn_purity(xy: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of each point's k nearest map neighbours that come from its own cluster."""
    distances = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :k]
    return float((labels[neighbours] == labels[:, None]).mean())


def test_pca_recovers_a_plane_embedded_in_512_dimensions():
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.linspace(-5, 5, 21), np.linspace(-1, 1, 11)), axis=-1).reshape(-1, 2)
    layout = grid[rng.permutation(len(grid))]  # a centred grid: its principal axes are x then y, exactly
    basis, _ = np.linalg.qr(rng.normal(size=(512, 2)))
    features = layout @ basis.T + 3.0  # off the origin: PCA must centre
    xy = featuremap.pca_2d(features)
    for axis in range(2):  # each axis is the layout's, up to sign (the input is float32)
        assert min(np.abs(xy[:, axis] - layout[:, axis]).max(), np.abs(xy[:, axis] + layout[:, axis]).max()) < 1e-4
    assert np.allclose(xy, featuremap.pca_2d(features[::-1])[::-1])  # the sign does not depend on row order


def test_pca_of_a_torch_tensor_and_of_tiny_inputs():
    torch = pytest.importorskip("torch")
    features, _ = clusters(3, 10, dim=16)
    assert np.allclose(featuremap.pca_2d(torch.from_numpy(features)), featuremap.pca_2d(features))
    assert featuremap.pca_2d(np.zeros((0, 8))).shape == (0, 2)
    assert np.array_equal(featuremap.pca_2d(np.ones((1, 8))), np.zeros((1, 2)))
    two = featuremap.pca_2d(np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert two.shape == (2, 2) and np.allclose(two[:, 1], 0) and np.isclose(abs(two[0, 0] - two[1, 0]), np.sqrt(2))
    assert np.array_equal(featuremap.pca_2d(np.ones((5, 8))), np.zeros((5, 2)))  # all the same point


def test_umap_keeps_well_separated_clusters_apart_and_caches():
    features, labels = clusters(4, 30)
    xy = featuremap.umap_2d(features)
    assert xy.shape == (120, 2) and np.isfinite(xy).all()
    assert knn_purity(xy, labels) > 0.95
    assert featuremap.umap_2d(features) is xy  # the same array from memory
    assert not xy.flags.writeable  # so no caller can change what the next one gets
    assert featuremap.cached_umap(featuremap.umap_key(features)) is xy
    assert featuremap.cached_umap(featuremap.umap_key(features, n_neighbors=5)) is None
    other = featuremap.umap_2d(features, seed=1)
    assert other is not xy and knn_purity(other, labels) > 0.95


def test_umap_on_few_points_clamps_its_neighbours():
    features, labels = clusters(2, 3, dim=32)
    assert featuremap.umap_2d(features, n_neighbors=15).shape == (6, 2)
    with pytest.raises(ValueError, match="at least 4 points"):
        featuremap.umap_2d(features[:3])


def test_capping_is_deterministic_and_spread():
    assert featuremap.cap_indices(5, 10).tolist() == [0, 1, 2, 3, 4]
    chosen = featuremap.cap_indices(10_000, 2000)
    assert len(set(chosen.tolist())) == 2000 and chosen[0] == 0 and chosen[-1] == 9999
    assert np.array_equal(chosen, featuremap.cap_indices(10_000, 2000))
    assert np.diff(chosen).max() <= 6  # evenly spread: every class folder of a sorted listing keeps its share


def test_warm_up_in_background_starts_one_thread_per_process():
    featuremap.warm_up_in_background()
    featuremap.warm_up_in_background()
    warming = [t for t in threading.enumerate() if t.name == "umap-warm-up"]
    assert len(warming) <= 1  # none once it is done
    for thread in warming:
        thread.join()
    assert featuremap.umap_compiled()


def test_past_the_exact_graph_limit_umap_builds_its_own_graph(monkeypatch):
    umap = featuremap._umap()
    seen = []
    real = umap.UMAP

    def spy(**kwargs):
        seen.append("precomputed_knn" in kwargs)
        return real(**kwargs)

    monkeypatch.setattr(umap, "UMAP", spy)
    x = np.random.default_rng(3).normal(size=(60, 16)).astype(np.float32)
    monkeypatch.setattr(featuremap, "EXACT_KNN_POINTS", 59)
    assert featuremap.umap_2d(x, n_epochs=20).shape == (60, 2)
    monkeypatch.setattr(featuremap, "EXACT_KNN_POINTS", 60)
    assert featuremap.umap_2d(x[::-1].copy(), n_epochs=20).shape == (60, 2)
    assert seen == [False, True]  # 60 points: past a limit of 59 its own graph, at a limit of 60 the exact one
