"""The Synthetic pairs tab for real: `python app.py` on 127.0.0.1, driven by gradio_client and headless Chromium.

The app runs with its own TMPDIR, so the thumbnail cache (in this session's SYNOOD_HOME) is outside Gradio's
temporary folder and the working directory: the gallery only shows if app.py allows that one folder.
"""
from pathlib import Path

import pytest
from gradio_client import Client

from bench.common.drawn_pairs import write_generation
from bench.common.serve import running_app
from synood.data import manifest as manifests
from ui import thumbnails
from ui.pairs_tab import escape, outward


@pytest.mark.parametrize("value", [-8.294, -8.3, -0.005, 0.07, 0.29, 3.0, -12.999999])
def test_energy_bounds_round_outward_to_two_decimals(value):
    low, high = outward(value, up=False), outward(value, up=True)
    assert low <= value <= high and high - low < 0.0201
    assert round(low, 2) == low and round(high, 2) == high  # shown as typed: -8.3, not -8.300000000000001


def test_manifest_text_shows_literally():
    assert escape("A *photo* | [sky](x) #1") == r"A \*photo\* \| \[sky\]\(x\) \#1"


@pytest.fixture(scope="module")
def generation(tmp_path_factory) -> Path:
    return write_generation(tmp_path_factory.mktemp("pairs") / "gen", 30)


@pytest.fixture(scope="module")
def pairs_app(tmp_path_factory):
    app_tmp = tmp_path_factory.mktemp("app-tmp")
    assert not thumbnails.thumbnail_dir().is_relative_to(app_tmp)
    with running_app("--suite", "tiny", log=tmp_path_factory.mktemp("pairs-app") / "app.log",
                     env={"TMPDIR": str(app_tmp)}) as url:
        yield url


def test_client_loads_filters_pages_and_opens(pairs_app, generation):
    client = Client(pairs_app, verbose=False)
    with pytest.raises(Exception, match="no such file or folder"):
        client.predict(str(generation / "missing"), "manifest", "ascending", 12, api_name="/pairs_load")
    with pytest.raises(Exception, match="Load a generation folder"):
        client.predict("", None, None, "", "manifest", "ascending", 12, api_name="/pairs_filter")
    classes, low, high, label, gallery, where, number, *pair_view, pair_id = client.predict(
        str(generation), "manifest", "ascending", 12, api_name="/pairs_load")
    manifest = manifests.load_manifest(generation)
    assert [value for _, value in classes["choices"]] == ["", *(c for c, _ in manifest.classes())]
    assert low <= min(p.energy_after for p in manifest.pairs) and high >= max(p.energy_after for p in manifest.pairs)
    assert (label, number, pair_view, pair_id) == ("", 1, [None, None, None, ""], "")
    assert "Page **1** of 3 · 30 pairs shown of 30" in where
    assert len(gallery) == 12 and gallery[0]["caption"].startswith("tench · E ")
    assert all(Path(item["image"]).read_bytes()[:2] == b"\xff\xd8" for item in gallery)  # served JPEG thumbnails

    gallery, where, number = client.predict("n01440764", low, high, "", "energy_after", "descending", 12,
                                            api_name="/pairs_filter")
    tench = manifests.sort_pairs(manifests.filter_pairs(manifest.pairs, "n01440764"), "energy_after", descending=True)
    assert [item["caption"] for item in gallery] == [f"tench · E {p.energy_before:.2f} → {p.energy_after:.2f} · "
                                                     f"neg: {p.negative_label}" for p in tench]
    assert "8 pairs shown of 30" in where and number == 1

    gallery, where, number = client.predict("", low, high, "", "manifest", "ascending", 12, 3, api_name="/pairs_page")
    assert number == 3 and len(gallery) == 6 and "Page **3** of 3" in where
    gallery, where, number = client.predict("", low, high, "", "manifest", "ascending", 12, 9, api_name="/pairs_page")
    assert number == 3  # clamped to the last page

    source, synthetic, curve, detail = client.predict(manifest.pairs[5].id, api_name="/pairs_open")
    assert Path(source).is_file() and Path(synthetic).is_file() and curve["type"] == "plotly"
    assert '"name":"loss"' in curve["plot"] and '"name":"energy E(x)"' in curve["plot"]
    assert "n02102040/img5" in detail and manifest.pairs[5].negative_label in detail and "→" in detail
    with pytest.raises(Exception, match="no pair with id"):
        client.predict("n01440764/nothing.JPEG", api_name="/pairs_open")


@pytest.mark.browser
def test_synthetic_pairs_tab_in_chromium(pairs_app, generation, browser):  # noqa: F811 (the imported fixture)
    """Load a manifest, filter by label, click a pair: the full-size pair, its curve and details appear."""
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(pairs_app)
    page.get_by_role("tab", name="Synthetic pairs").click()
    page.locator("#pairs-path textarea, #pairs-path input").first.fill(str(generation / "manifest.jsonl"))
    page.locator("#pairs-load").click()
    where = page.locator("#pairs-page")
    where.get_by_text("30 pairs shown of 30").wait_for(timeout=60_000)
    thumbnails = page.locator("#pairs-gallery img")
    thumbnails.first.wait_for(timeout=30_000)
    assert thumbnails.count() == 24
    page.locator("#pairs-next").click()
    where.get_by_text("Page 2 of 2").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('#pairs-gallery img').length === 6")
    label = page.locator("#pairs-label textarea, #pairs-label input").first
    label.fill("sawdust")
    label.press("Enter")
    where.get_by_text("5 pairs shown of 30").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('#pairs-gallery img').length === 5")
    assert "neg: sawdust" in page.locator("#pairs-gallery").inner_text()
    page.wait_for_function("() => [...document.querySelectorAll('#pairs-gallery img')].every(i => i.naturalWidth > 0)")
    thumbnails.nth(1).click()
    page.locator("#pairs-detail").get_by_text("n03417042/img7.JPEG", exact=True).wait_for(timeout=30_000)
    for image in ("#pairs-source img", "#pairs-synthetic img"):
        page.locator(image).first.wait_for(timeout=30_000)
    page.locator("#pairs-curve .js-plotly-plot").first.wait_for(timeout=30_000)
    assert "sawdust" in page.locator("#pairs-detail").inner_text()
    assert page.locator("#pairs-id textarea, #pairs-id input").first.input_value() == "n03417042/img7.JPEG"
    page.locator("#pairs-path textarea, #pairs-path input").first.fill(str(generation / "nowhere"))
    page.locator("#pairs-load").click()
    page.get_by_text("no such file or folder").first.wait_for(timeout=30_000)
    assert "5 pairs shown of 30" in where.inner_text() and "Traceback" not in page.content()
    page.close()
