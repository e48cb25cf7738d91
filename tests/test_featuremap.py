"""Feature maps: PCA's known answer, UMAP keeping clusters apart, the in-memory cache, capping, tiny inputs,
thumbnails and the figure's hover data."""
import json
import threading

import numpy as np
import pytest
from PIL import Image

from synood.pipelines import featuremap
from synood.pipelines.featuremap import Point


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


def test_thumbnails_are_named_by_content_and_built_once(tmp_path):
    from synood.data.features import content_hash

    first, copy, broken = tmp_path / "a.png", tmp_path / "sub" / "b.png", tmp_path / "broken.jpg"
    Image.new("RGB", (640, 320), (200, 30, 30)).save(first)
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    broken.write_bytes(b"not an image")
    images = [first, copy, broken]
    made = featuremap.thumbnails(images, [content_hash(image) for image in images])
    assert made[0] == made[1] != made[2] and made[0].is_relative_to(featuremap.thumbnail_dir())
    assert Image.open(made[0]).size == (160, 80) and Image.open(made[2]).size == (160, 160)  # a placeholder
    stamp = made[0].stat().st_mtime_ns
    assert featuremap.thumbnails([copy], [content_hash(copy)]) == [made[0]] and made[0].stat().st_mtime_ns == stamp
    Image.new("RGB", (64, 64), (0, 0, 200)).save(first)
    assert featuremap.thumbnails([first], [content_hash(first)])[0] != made[0]  # new content, new name
    assert featuremap.file_url(tmp_path / "a b.jpg") == f"gradio_api/file={tmp_path}/a%20b.jpg"


def test_figure_colours_by_group_or_score_and_carries_hover_data():
    xy = np.arange(8, dtype=float).reshape(4, 2)
    points = [Point("ID", "tabby cat", 0.9, "cat.png", "gradio_api/file=/t/1.jpg"),
              Point("OOD", "brick.png", 0.1, "brick.png", "gradio_api/file=/t/2.jpg"),
              Point("ID", "espresso", 0.8, "coffee.png", "gradio_api/file=/t/3.jpg"),
              Point("synthetic", "sawdust", 0.4, "cat_0.png", "gradio_api/file=/t/4.jpg")]
    figure = featuremap.figure(xy, points, "group", "map")
    by_group = json.loads(figure.to_json())
    assert [trace["name"] for trace in by_group["data"]] == ["ID (2)", "synthetic (1)", "OOD (1)"]
    assert by_group["data"][0]["customdata"] == [["ID", "tabby cat", 0.9, "gradio_api/file=/t/1.jpg", "cat.png"],
                                                 ["ID", "espresso", 0.8, "gradio_api/file=/t/3.jpg", "coffee.png"]]
    assert figure.data[0].x.tolist() == [0.0, 4.0] and "coloraxis" not in by_group["layout"]
    by_score = json.loads(featuremap.figure(xy, points, "score", "map").to_json())
    assert by_score["data"][0]["marker"]["color"] == [0.9, 0.8]
    assert {trace["marker"]["coloraxis"] for trace in by_score["data"]} == {"coloraxis"}
    assert [trace["marker"]["symbol"] for trace in by_score["data"]] == ["circle", "diamond", "x"]


def test_figure_draws_small_groups_on_top_and_bigger():
    """400 OOD points would hide 4 ID and 4 synthetic ones drawn before them: the largest group goes first."""
    rng = np.random.default_rng(0)
    points = [Point(group, f"{group} {i}", 0.5, f"{group}{i}.png", "gradio_api/file=/t.jpg")
              for group, count in (("ID", 4), ("synthetic", 4), ("OOD", 400)) for i in range(count)]
    data = json.loads(featuremap.figure(rng.normal(size=(len(points), 2)), points).to_json())["data"]
    assert [trace["name"] for trace in data] == ["OOD (400)", "ID (4)", "synthetic (4)"]  # later traces lie on top
    assert [trace["legendrank"] for trace in data] == [2, 0, 1]  # the legend still reads ID, synthetic, OOD
    size = {trace["name"].split()[0]: trace["marker"]["size"] for trace in data}
    assert size["ID"] == size["synthetic"] > size["OOD"]
    assert data[1]["marker"]["line"]["width"] > 0 and data[0]["marker"]["line"]["width"] == 0
    few = json.loads(featuremap.figure(rng.normal(size=(30, 2)), points[:4] + points[8:34]).to_json())["data"]
    assert [trace["marker"]["size"] for trace in few] == [7, 7]  # 26 OOD, then 4 ID: over a tenth of the 30
    few = json.loads(featuremap.figure(rng.normal(size=(30, 2)), points[:2] + points[8:36]).to_json())["data"]
    assert [trace["marker"]["size"] for trace in few] == [7, 11]  # 28 OOD, then 2 ID: under a tenth


def test_warm_up_in_background_starts_one_thread_per_process():
    featuremap.warm_up_in_background()
    featuremap.warm_up_in_background()
    warming = [t for t in threading.enumerate() if t.name == "umap-warm-up"]
    assert len(warming) <= 1  # none once it is done
    for thread in warming:
        thread.join()
    assert featuremap.umap_compiled()
