"""`synood report RUN --out FILE.html` after a tiny-suite `synood evaluate` (in process; random weights: only the
structure means something): the page holds the JSON's table values, one histogram per score and the hardest cases
as embedded thumbnails, names no local path, and renders in headless Chromium with the network cut off."""
import json
from pathlib import Path

import pytest

from tests.helpers.cli import in_process as run, photo_sets
from synood.config import cache_home

SETS = {"textures": ("brick", "grass", "gravel"), "docs": ("page", "text", "notes")}
SCREENSHOT = Path("/tmp/synood-report-cli.png")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A tiny-suite evaluation of 6 ID photos against two OOD sets with a bootstrap (--json), and its report."""
    root = tmp_path_factory.mktemp("report")
    photo_sets(root, SETS)
    code, out, err = run("evaluate", "--suite", "tiny", "--id", str(root / "id"),
                         *(a for n in SETS for a in ("--ood", f"{n}={root / n}")), "--bootstrap", "50", "--json")
    assert code == 0, err[-2000:]
    result = json.loads(out)
    code, _, err = run("report", result["run"], "--out", str(root / "x.html"), "--cases", "3")
    assert code == 0 and f"wrote the report of evaluate run {result['run']}" in err
    return root, result, (root / "x.html").read_text()


def test_the_page_holds_the_table_the_histograms_and_the_hardest_cases(reported):
    _, result, page = reported
    for method in result["methods"].values():
        for entry in [*(s["mos"] for s in method["sets"].values()), method["average"]["mos"]]:
            half = (entry["ci95"]["auroc"][1] - entry["ci95"]["auroc"][0]) / 2
            assert f"{entry['auroc']:.2f}<span class=\"ci\">±{half:.2f}</span>" in page
            assert f"{entry['fpr95']:.2f}" in page
    assert page.count('data-figure="histogram-') == len(result["methods"])
    for method in result["methods"]:
        assert f'data-figure="histogram-{method}"' in page and f'<section class="hardest" data-scorer="{method}"' in page
    assert page.count('<img src="data:image/jpeg;base64,') >= 6 and page.count("plotly.js v") == 1
    assert "Tiny (random weights)" in page and "its outputs mean nothing" in page  # the stand-in says what it is


def test_the_page_names_no_local_path(reported):
    root, _, page = reported
    for path in (root, root.resolve(), cache_home(), Path.home(), Path.cwd()):
        assert str(path) not in page, path
    assert "/usr/share" not in page  # where the packaged photos live


def test_the_page_renders_offline_in_chromium(reported, browser):
    root, result, _ = reported
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = []

    def offline(route):
        if route.request.url.startswith(("data:", "file:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    try:
        page.goto((root / "x.html").as_uri())
        page.locator(".plot-container, svg.main-svg").first.wait_for(timeout=30_000)
        table = page.locator("table.metrics").first.inner_text()
        assert f"{result['methods']['neglabel']['average']['mos']['auroc']:.2f}" in table
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        assert widths and all(w > 0 for w in widths)
        assert page.locator("svg.main-svg").count() >= len(result["methods"])
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        page.close()
    assert refused == []


def test_bad_input_is_one_message(reported, tmp_path):
    _, result, _ = reported
    code, _, err = run("report", "no-such-run", "--out", str(tmp_path / "r.html"))
    assert code == 2 and "synood: error: no run 'no-such-run'" in err
    code, _, err = run("report", result["run"], "--out", str(tmp_path / "missing" / "r.html"))
    assert code == 2 and "synood: error: cannot write" in err and "no such folder" in err
    code, _, err = run("report", result["run"], "--out", str(tmp_path / "r.txt"))
    assert code == 2 and "give an .html file" in err
    assert not list(tmp_path.iterdir())
