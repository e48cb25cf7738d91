"""ui/featuremap_view.py: per-point thumbnails named by content, their URLs, and the figure's colours and hover data."""
import json

import numpy as np
import pytest
from PIL import Image

from synood.errors import UserError
from ui import featuremap_view
from ui.featuremap_tab import MapView
from ui.featuremap_view import Point
from ui.thumbnails import thumbnail_dir


def test_thumbnails_are_named_by_content_and_built_once(tmp_path):
    from synood.data.features import content_hash

    first, copy, broken = tmp_path / "a.png", tmp_path / "sub" / "b.png", tmp_path / "broken.jpg"
    Image.new("RGB", (640, 320), (200, 30, 30)).save(first)
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes())
    broken.write_bytes(b"not an image")
    images = [first, copy, broken]
    made = featuremap_view.thumbnails(images, [content_hash(image) for image in images])
    assert made[0] == made[1] != made[2] and made[0].is_relative_to(thumbnail_dir())
    assert Image.open(made[0]).size == (160, 80) and Image.open(made[2]).size == (160, 160)  # a placeholder
    stamp = made[0].stat().st_mtime_ns
    assert featuremap_view.thumbnails([copy], [content_hash(copy)]) == [made[0]] and made[0].stat().st_mtime_ns == stamp
    Image.new("RGB", (64, 64), (0, 0, 200)).save(first)
    assert featuremap_view.thumbnails([first], [content_hash(first)])[0] != made[0]  # new content, new name
    assert featuremap_view.file_url(tmp_path / "a b.jpg") == f"gradio_api/file={tmp_path}/a%20b.jpg"


def test_figure_colours_by_group_or_score_and_carries_hover_data():
    xy = np.arange(8, dtype=float).reshape(4, 2)
    points = [Point("ID", "tabby cat", {"neglabel": 0.9}, "cat.png", "gradio_api/file=/t/1.jpg"),
              Point("OOD", "brick.png", {"neglabel": 0.1}, "brick.png", "gradio_api/file=/t/2.jpg"),
              Point("ID", "espresso", {"neglabel": 0.8}, "coffee.png", "gradio_api/file=/t/3.jpg"),
              Point("synthetic", "sawdust", {"neglabel": 0.4}, "cat_0.png", "gradio_api/file=/t/4.jpg")]
    figure = featuremap_view.figure(xy, points, "group", "map", {"neglabel": "NegLabel"})
    by_group = json.loads(figure.to_json())
    assert [trace["name"] for trace in by_group["data"]] == ["ID (2)", "synthetic (1)", "OOD (1)"]
    assert by_group["data"][0]["customdata"] == [  # the last item: the point's index (the selection gallery's key)
        ["ID", "tabby cat", 0.9, "gradio_api/file=/t/1.jpg", "cat.png", "NegLabel", 0],
        ["ID", "espresso", 0.8, "gradio_api/file=/t/3.jpg", "coffee.png", "NegLabel", 2]]
    assert {trace["type"] for trace in by_group["data"]} == {"scatter"}  # SVG for a small map, WebGL for a big one
    big = featuremap_view.figure(np.zeros((featuremap_view.WEBGL_POINTS + 1, 2)),
                                 [points[0]] * (featuremap_view.WEBGL_POINTS + 1), "group", "map")
    assert [trace.type for trace in big.data] == ["scattergl"]
    assert figure.data[0].x.tolist() == [0.0, 4.0] and "coloraxis" not in by_group["layout"]
    by_score = json.loads(featuremap_view.figure(xy, points, "neglabel", "map", {"neglabel": "NegLabel"}).to_json())
    assert by_score["data"][0]["marker"]["color"] == [0.9, 0.8]
    assert {trace["marker"]["coloraxis"] for trace in by_score["data"]} == {"coloraxis"}
    assert [trace["marker"]["symbol"] for trace in by_score["data"]] == ["circle", "diamond", "x"]


def test_figure_draws_small_groups_on_top_and_bigger():
    """400 OOD points would hide 4 ID and 4 synthetic ones drawn before them: the largest group goes first."""
    rng = np.random.default_rng(0)
    points = [Point(group, f"{group} {i}", {"neglabel": 0.5}, f"{group}{i}.png", "gradio_api/file=/t.jpg")
              for group, count in (("ID", 4), ("synthetic", 4), ("OOD", 400)) for i in range(count)]
    data = json.loads(featuremap_view.figure(rng.normal(size=(len(points), 2)), points).to_json())["data"]
    assert [trace["name"] for trace in data] == ["OOD (400)", "ID (4)", "synthetic (4)"]  # later traces lie on top
    assert [trace["legendrank"] for trace in data] == [2, 0, 1]  # the legend still reads ID, synthetic, OOD
    size = {trace["name"].split()[0]: trace["marker"]["size"] for trace in data}
    assert size["ID"] == size["synthetic"] > size["OOD"]
    assert data[1]["marker"]["line"]["width"] > 0 and data[0]["marker"]["line"]["width"] == 0
    few = json.loads(featuremap_view.figure(rng.normal(size=(30, 2)), points[:4] + points[8:34]).to_json())["data"]
    assert [trace["marker"]["size"] for trace in few] == [7, 7]  # 26 OOD, then 4 ID: over a tenth of the 30
    few = json.loads(featuremap_view.figure(rng.normal(size=(30, 2)), points[:2] + points[8:36]).to_json())["data"]
    assert [trace["marker"]["size"] for trace in few] == [7, 11]  # 28 OOD, then 2 ID: under a tenth


def test_a_selection_fills_the_gallery_and_a_click_opens_its_point(tmp_path):
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for i, file in enumerate(files):
        Image.new("RGB", (32, 32), (80 * i, 0, 0)).save(file)
    points = tuple(Point("ID", f"label {i}", {"neglabel": i / 4}, file.name, "") for i, file in enumerate(files))
    view = MapView(np.zeros((3, 2)), points, "map", {"neglabel": "NegLabel"}, tuple(files),
                   tuple(tmp_path / "thumbs" / f"{i}.jpg" for i in range(3)))
    gallery, items, note, clicked = view.selected("[2, 0, 2, 7]")  # a lasso: repeats and unknown indices dropped
    assert [item.path for item in items] == [str(files[2]), str(files[0])] and clicked is None
    assert gallery[0][1] == "ID · label 2 · 0.500" and "2 points selected" in note
    gallery, items, note, clicked = view.selected('{"points": [1], "click": 1796220505774}')  # a click: opened
    assert clicked == items[0] and clicked.path == str(files[1])
    with pytest.raises(UserError, match="The selection could not be read"):
        view.selected('{"points": "x"}')
