"""The app for real: `python app.py` on 127.0.0.1, driven by gradio_client and headless Chromium."""
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from bench.common.serve import running_app
from synood.data import photos
from tests.helpers.browser import SCREENSHOTS, examples_beside

NO_NETWORK = Path(__file__).resolve().parents[1] / "no_network"


@pytest.fixture(scope="module")
def tiny_app(tmp_path_factory):
    with running_app("--suite", "tiny", log=tmp_path_factory.mktemp("app") / "app.log") as url:
        yield url


def test_client_sees_the_suite_and_loads_it(tiny_app):
    client = Client(tiny_app, verbose=False)
    table = client.predict(api_name="/components")
    assert 'data-suite="tiny"' in table and "random weights" in table and "not loaded yet" in table
    table, status = client.predict(api_name="/load_components")
    assert "not loaded yet" not in table and "loaded" in table
    assert status.startswith("Loaded: Image/text encoder, Energy classifier, Context labeller, Generator")


@pytest.mark.browser
def test_models_panel_in_chromium(tiny_app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(tiny_app)
    page.get_by_role("tab", name="Models").click()
    assert "RANDOM weights" in page.locator("#suite-badge").inner_text()
    assert "Tiny (random weights)" in page.locator("#suite-badge").inner_text()
    table = page.locator("#components-table table.components")
    assert table.get_attribute("data-suite") == "tiny"
    page.get_by_role("button", name="Load all components").click()
    page.locator("#load-status").get_by_text("Loaded:").wait_for(timeout=120_000)
    rows = table.locator("tbody tr")
    assert rows.count() == 4
    for i in range(4):
        params = rows.nth(i).locator("td").nth(5).inner_text()
        assert params.replace(",", "").isdigit(), params
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)
    page.close()


@pytest.mark.browser
def test_fallback_notice_and_clear_load_error(tmp_path, browser):
    """--suite paper on a machine without its weights: the page says what is missing, no traceback."""
    with running_app("--suite", "paper", log=tmp_path / "app.log") as url:
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("button", name="Load all components").click()
        toast = page.get_by_text("synood models download --suite paper").first
        toast.wait_for(timeout=60_000)
        assert "Traceback" not in page.content()
        page.close()


@pytest.mark.browser
def test_default_start_without_network_is_the_offline_suite(tmp_path, browser):
    """A fresh machine with no network and no HF_HUB_OFFLINE: `python app.py` serves the offline suite
    and says why, without one outgoing connection attempt (sitecustomize exits 97 on any)."""
    env = {"PYTHONPATH": str(NO_NETWORK), "HF_HUB_OFFLINE": None, "TRANSFORMERS_OFFLINE": None}
    with running_app(log=tmp_path / "auto.log", env=env, timeout=60) as url:
        page = browser.new_page()
        page.goto(url)
        notice = page.locator("#suite-notice")
        notice.wait_for()
        assert "offline suite" in notice.inner_text() and "not CLIP" in notice.inner_text()
        assert "synood models download --suite paper" in notice.inner_text()
        assert "Offline" in page.locator("#suite-badge").inner_text()
        page.get_by_role("tab", name="Models").click()
        assert page.locator("#components-table table.components").get_attribute("data-suite") == "offline"
        page.close()
    assert "no_network" not in (tmp_path / "auto.log").read_text()


def test_client_lists_context_and_builds_the_prompt(offline_app):
    client = Client(offline_app, verbose=False)
    labels, prompt, heading = client.predict(handle_file(str(photos.by_name("coffee").path)), api_name="/context")
    assert "espresso" in heading and "espresso" not in labels.splitlines()
    assert len(labels.splitlines()) >= 2 and prompt.startswith("A photo only remain ")
    assert client.predict("sand,  sea\nsky\nsea", api_name="/prompt") == "A photo only remain sand, sea, sky"
    with pytest.raises(Exception, match="Upload an image"):
        client.predict(None, api_name="/context")


@pytest.mark.browser
def test_context_tab_in_chromium(offline_app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(offline_app)
    page.get_by_role("tab", name="Context labels").click()
    page.locator("#context-image").wait_for()
    page.get_by_role("button", name="List context").click()
    page.get_by_text("Upload an image or pick an example first").first.wait_for(timeout=30_000)
    page.goto(offline_app)  # a fresh page, without the error toast
    page.get_by_role("tab", name="Context labels").click()
    palace = [p.name for p in photos.photos("id")].index("palace")
    examples_beside(page, "#context-image").nth(palace).click()
    page.locator("#context-image img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="List context").click()
    page.locator("#main-object").get_by_text("Main object").wait_for(timeout=180_000)
    labels = page.locator("#context-labels textarea")
    assert labels.input_value().strip()
    page.screenshot(path=str(SCREENSHOTS / "context.png"), full_page=True)
    labels.fill("wooden table\nsaucer")
    prompt = page.locator("#context-prompt textarea")
    page.wait_for_function("() => document.querySelector('#context-prompt textarea').value.includes('saucer')")
    assert prompt.input_value() == "A photo only remain wooden table, saucer"
    page.close()


@pytest.mark.browser
def test_negative_labels_tab_in_chromium(offline_app, browser):
    """Score a packaged photo, see both bar charts and S(x), change the groups live, search the negatives."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(offline_app)
    page.get_by_role("tab", name="Negative labels").click()
    page.locator("#neglabel-image input[type='file']").set_input_files(str(photos.by_name("coffee").path))
    page.locator("#neglabel-image img").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Score").click()
    score = page.locator("#neglabel-score")
    score.wait_for(timeout=480_000)  # the first use mines the negatives: ~2 min on 2 idle cores, then cached
    coffee_score = float(score.inner_text().split("=")[1])
    assert coffee_score > 0.5 and "100 groups" in page.locator("#neglabel-card").inner_text()
    for plot in ("#neglabel-id-plot", "#neglabel-negative-plot", "#neglabel-spread"):
        page.locator(f"{plot} .js-plotly-plot").first.wait_for(timeout=30_000)
    assert "espresso" in page.locator("#neglabel-id-plot").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "negative-labels.png"), full_page=True)
    groups = page.locator("#neglabel-groups input[type='number']")
    groups.fill("7")
    groups.press("Enter")
    page.locator("#neglabel-card").get_by_text("7 groups").wait_for(timeout=30_000)
    page.locator("#neglabel-browse").get_by_text("Browse the mined negative labels").click()
    page.locator("#neglabel-query textarea, #neglabel-query input").first.fill("fungus")
    page.get_by_role("button", name="Search").click()
    page.locator("#neglabel-found").get_by_text("negative labels match").wait_for(timeout=30_000)
    assert "fungus" in page.locator("#neglabel-table").inner_text()
    page.close()
