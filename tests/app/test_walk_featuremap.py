"""A newcomer's walk through the Feature map tab in headless Chromium, against the real offline app: an error, then
maps at each limit of "Points per group, at most", the hover panel, a new draw that empties the old map, its panel and
the stale status, Stop while images encode, and a reload in the middle of a draw."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synood.data import photos
from tests.helpers.browser import SCREENSHOTS, close_toasts
from ui.featuremap_view import GROUPS

SLOW = 600_000  # ms: the first offline mining, when this file runs alone
STATUS = "#featuremap-status"
THUMB = "#featuremap-hover .featuremap-thumb"


@pytest.fixture(scope="module")
def folders(tmp_path_factory, offline_generation) -> Path:
    """ID photos in class folders named as `synood select` reads them, OOD photos, and the session's generation."""
    root = tmp_path_factory.mktemp("walk-featuremap")
    for split in ("id", "ood"):
        for photo in photos.photos(split):
            folder = root / split / {"cat": "Egyptian_Mau"}.get(photo.name, "")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo.path, folder / f"{photo.name}{photo.path.suffix}")
    return root


def noise(folder: Path, count: int) -> Path:
    """`count` noise images never seen before (unseeded: the feature cache must not know them, so they encode)."""
    rng = np.random.default_rng()
    folder.mkdir()
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def fill(page, box: str, value: str) -> None:
    page.locator(f"#{box} textarea, #{box} input").first.fill(value)


def draw(page, id_folder: str, generation: str, ood: str) -> None:
    for box, value in (("featuremap-id", id_folder), ("featuremap-generation", generation), ("featuremap-ood", ood)):
        fill(page, box, value)
    page.locator("#featuremap-run").click()


def status_line(page) -> str:
    return page.locator(STATUS).inner_text()


def plotted(page) -> int:
    """Points on the map now (0 when it is empty)."""
    return page.locator("#featuremap-plot .scatterlayer .point").count()


def hover_first_point(page) -> None:
    page.wait_for_function("() => { const p = document.querySelector('#featuremap-plot .js-plotly-plot');"
                           " return p && p.featuremapListening; }", timeout=120_000)
    box = page.locator("#featuremap-plot .scatterlayer .point").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"() => {{ const i = document.querySelector({THUMB!r});"
                           " return i && !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=120_000)


def click_point(page, index: int) -> None:
    """A mouse click on the map's point `index` (as a person clicks: plotly picks the point under the pointer)."""
    box = page.locator("#featuremap-plot .scatterlayer .point").nth(index).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


@pytest.mark.browser
@pytest.mark.timeout(1200)
def test_walk_the_feature_map(offline_app, folders, offline_generation, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1250})
    page.goto(offline_app)
    page.get_by_role("tab", name="Feature map").click()
    cap = page.locator("#featuremap-cap input")
    low, high = int(cap.get_attribute("min")), int(cap.get_attribute("max"))  # the box's declared limits
    assert (low, high) == (1, 20_000)
    ids, gen, ood = str(folders / "id"), str(offline_generation), str(folders / "ood")

    draw(page, "", "", "")  # an error first: its status must not outlive the next map
    page.locator(STATUS).get_by_text("No map: Give at least one of").wait_for(timeout=60_000)

    fill(page, "featuremap-cap", str(low))  # one point per group: too few for UMAP, so PCA
    draw(page, ids, gen, ood)
    page.locator(STATUS).get_by_text("PCA of 3 points (ID 1 · synthetic 1 · OOD 1)").wait_for(timeout=SLOW)
    assert "No map" not in status_line(page)
    page.locator("#featuremap-plot .scatterlayer .point").nth(2).wait_for(timeout=120_000)
    assert plotted(page) == 3
    hover_first_point(page)
    label = page.locator("#featuremap-hover .featuremap-label").inner_text()
    assert label == "Egyptian Mau"  # the class its folder names, not its nearest label

    fill(page, "featuremap-cap", str(high))  # every image: a UMAP after its PCA preview
    draw(page, ids, gen, ood)
    page.wait_for_function(f"() => document.querySelector({THUMB!r}).hidden")  # the old point's panel went at once
    assert page.locator("#featuremap-hover .featuremap-meta").inner_text() == ""
    ids_count, ood_count = len(photos.photos("id")), len(photos.photos("ood"))
    every = ids_count + 2 + ood_count
    umap = f"UMAP of {every} points (ID {ids_count} · synthetic 2 · OOD {ood_count})"
    page.locator(STATUS).get_by_text(umap).wait_for(timeout=SLOW)
    assert plotted(page) == every and "PCA of 3 points" not in status_line(page)
    hover_first_point(page)
    page.locator("#featuremap-plot [data-title='Box Select']").first.click()  # a box over the whole map
    area = page.locator("#featuremap-plot .nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + 2, area["y"] + 2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] - 2, steps=8)
    page.mouse.up()
    page.locator("#featuremap-selected-note").get_by_text(f"{every} points selected").wait_for(timeout=60_000)
    assert page.locator("#featuremap-selected .thumbnail-item").count() == min(every, 48)
    page.wait_for_function("() => [...document.querySelectorAll('#featuremap-selected img')].every("
                           "i => i.complete && i.naturalWidth > 0)", timeout=60_000)
    close_toasts(page)  # the earlier steps' warnings
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "feature-map-selection.png"), full_page=True)
    first = page.locator("#featuremap-selected .thumbnail-item").first
    group = first.inner_text().split(" · ")[0]
    first.click()  # opened and scored in the Negative labels tab
    page.locator("#neglabel-card").get_by_text("S(x)").wait_for(timeout=SLOW)
    assert group in GROUPS
    before = page.locator("#neglabel-image img").first.get_attribute("src")
    card = page.locator("#neglabel-card").inner_text()
    page.get_by_role("tab", name="Feature map").click()
    page.mouse.dblclick(area["x"] + 5, area["y"] + 5)  # clears the box, which covers the points it holds
    click_point(page, every - 1)  # a click on a point (the last: an OOD image) opens it in the inspector at once
    page.get_by_role("tab", name="Negative labels", selected=True).wait_for(timeout=60_000)
    page.wait_for_function("(old) => { const i = document.querySelector('#neglabel-image img');"
                           " return i && i.getAttribute('src') !== old; }", arg=before, timeout=60_000)
    page.wait_for_function("(old) => document.querySelector('#neglabel-card').innerText !== old", arg=card,
                           timeout=SLOW)  # the clicked image scored
    page.get_by_role("tab", name="Feature map").click()

    slow = str(noise(tmp_path / "noise", 600))  # Stop while the images encode: said at once, no map left
    draw(page, slow, "", "")
    page.locator(STATUS).get_by_text("Reading and encoding the images").wait_for(timeout=120_000)
    page.wait_for_function(f"() => document.querySelector({THUMB!r}).hidden")
    assert plotted(page) == 0  # the earlier map went when Draw was pressed
    page.locator("#featuremap-stop").click()
    page.locator(STATUS).get_by_text("Stopped while encoding the images").wait_for(timeout=60_000)
    assert plotted(page) == 0

    draw(page, str(noise(tmp_path / "more-noise", 200)), "", "")  # a reload in the middle of a draw
    page.locator(STATUS).get_by_text("Reading and encoding the images").wait_for(timeout=SLOW)  # after the stopped one
    page.reload()
    page.get_by_role("tab", name="Feature map").click()
    assert status_line(page).strip() == "" and plotted(page) == 0
    fill(page, "featuremap-cap", str(low))
    draw(page, ids, gen, ood)  # the page works again, whatever became of the abandoned draw
    page.locator(STATUS).get_by_text("PCA of 3 points").wait_for(timeout=SLOW)
    hover_first_point(page)
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "walk-feature-map.png"), full_page=True)  # for a person to look at; not a doc
    page.close()
