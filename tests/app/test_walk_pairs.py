"""A person's walk through the Synthetic pairs and Models tabs of the real offline app, in Chromium: bad paths after a
generation is loaded, every filter and page control at its limits, and a Models table that follows the other tabs."""
from __future__ import annotations

import pytest

from bench.common.drawn_pairs import write_generation
from synood.data import photos
from tests.helpers.browser import close_toasts, error_badges, set_number, toast

VIEW = ("pairs-gallery", "pairs-source", "pairs-synthetic", "pairs-curve", "pairs-detail", "pairs-page")


def gallery_size(page) -> int:
    return page.locator("#pairs-gallery .thumbnail-item").count()


@pytest.mark.browser
def test_pairs_walk(offline_app, browser, data_root, tmp_path):
    generation = write_generation(tmp_path / "gen", 30)
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    page.goto(offline_app)
    page.get_by_role("tab", name="Synthetic pairs").click()
    path = page.locator("#pairs-path textarea, #pairs-path input").first
    path.fill(str(generation))
    page.locator("#pairs-load").click()
    page.locator("#pairs-page").get_by_text("30 pairs shown of 30").wait_for(timeout=60_000)
    page.locator("#pairs-gallery .thumbnail-item").first.click()
    page.locator("#pairs-detail").get_by_text("n01440764/img0.JPEG").first.wait_for(timeout=30_000)
    shown = page.locator("#pairs-detail").inner_text()

    for bad, message in ((tmp_path / "nowhere", "no such file or folder"), ("/etc", "outside the app's data roots")):
        path.fill(str(bad))
        page.locator("#pairs-load").click()
        messages = toast(page, message)
        assert len(messages) == 1 and str(bad) in messages[0], messages  # one bad input, one message
        assert gallery_size(page) == 24 and page.locator("#pairs-detail").inner_text() == shown  # nothing lost
        assert not error_badges(page, *VIEW)
        close_toasts(page)

    page.locator("#pairs-size input").first.click()  # the largest page size, then the page number past both ends
    page.get_by_role("option", name="96").click()
    page.locator("#pairs-page").get_by_text("Page 1 of 1").wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelectorAll('#pairs-gallery .thumbnail-item').length === 30")
    for number, expected in (("0", "Page 1 of 1"), ("999999", "Page 1 of 1")):
        box = page.locator("#pairs-page-number input[type='number']").first
        box.fill(number)
        box.press("Enter")
        page.locator("#pairs-page").get_by_text(expected).wait_for(timeout=30_000)
    set_number(page, "pairs-energy-min", "1000")  # a range no pair is in
    page.locator("#pairs-apply").click()
    page.locator("#pairs-page").get_by_text("0 pairs shown of 30").wait_for(timeout=30_000)
    assert not error_badges(page, *VIEW, "pairs-status") and "Traceback" not in page.content()
    page.close()


@pytest.mark.browser
def test_models_tab_follows_what_other_tabs_loaded(offline_app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(offline_app)
    page.get_by_role("tab", name="Context labels").click()
    page.locator("#context-image input[type='file']").set_input_files(str(photos.by_name("orange").path))
    page.locator("#context-image img").first.wait_for(timeout=30_000)
    page.locator("#list-context").click()
    page.locator("#main-object").get_by_text("Main object").wait_for(timeout=300_000)
    page.get_by_role("tab", name="Models").click()  # no Refresh pressed
    rows = page.locator("#components-table table.components tbody tr")
    rows.filter(has_text="Context labeller").get_by_text("loaded", exact=True).wait_for(timeout=30_000)
    for role in ("Context labeller", "Generator"):  # algorithms over the other models: 0 parameters of their own
        assert "none of its own" in rows.filter(has_text=role).inner_text()
    assert "pretrained" in rows.filter(has_text="Energy classifier").inner_text()
    page.close()
