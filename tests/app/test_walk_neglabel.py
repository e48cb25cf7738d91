"""A person's walk through the Negative labels and Context labels tabs of the real offline app, in Chromium: every
control at its limits, a bad file after clicking a packaged photo, names that are told apart, whole words first."""
from __future__ import annotations

import re

import pytest
from gradio_client import Client, handle_file

from synood.data import photos
from tests.helpers.browser import (close_toasts, error_badges, examples_beside, not_an_image, set_number, toast,
                                   too_many_pixels)

OUTPUTS = ("neglabel-card", "neglabel-id-plot", "neglabel-negative-plot", "neglabel-spread")
SCORE_WAIT = 480_000  # the app's first score mines the negatives when the caches are cold


def card(page) -> str:
    return page.locator("#neglabel-card").inner_text()


def plot_labels(page, element_id: str) -> list[str]:
    """The category labels of a bar chart, as plotly holds them."""
    return page.evaluate(f"() => document.querySelector('#{element_id} .js-plotly-plot').data[0].y")


@pytest.mark.browser
def test_negative_labels_walk(offline_app, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    page.goto(offline_app)
    page.get_by_role("tab", name="Negative labels").click()
    ids, oods = photos.photos("id"), photos.photos("ood")
    assert page.locator("#neglabel-image-id-photos").get_by_text("In-distribution photos").count()
    assert page.locator("#neglabel-image-ood-photos").get_by_text("Out-of-distribution photos").count()
    assert page.locator("#neglabel-image-ood-photos").get_by_text(oods[0].title).count()  # photos say what they are

    examples_beside(page, "#neglabel-image").nth([p.name for p in ids].index("cat")).click()
    page.locator("#neglabel-image img").first.wait_for(timeout=30_000)
    page.locator("#neglabel-run").click()
    page.locator("#neglabel-score").wait_for(timeout=SCORE_WAIT)
    assert "chelsea.png" in card(page) and "energy E(x) = -" in card(page)  # the image named; E(x) < 0 for a photo
    assert "Stand-in" in page.locator("#neglabel-standin").inner_text()

    for value, shown in (("1", "1 groups"), ("1000", "1000 groups")):  # the groups slider at both ends
        set_number(page, "neglabel-groups", value)
        page.locator("#neglabel-card").get_by_text(shown).wait_for(timeout=60_000)
    for value in ("0.001", "0.1"):  # the temperature slider at both ends
        set_number(page, "neglabel-temperature", value)
        page.locator("#neglabel-card").get_by_text(f"temperature {float(value):g}").wait_for(timeout=60_000)
    assert not error_badges(page, *OUTPUTS, "neglabel-status")
    scored = card(page)

    for bad, message in ((not_an_image(tmp_path), "not an image"), (too_many_pixels(tmp_path), "over the limit")):
        examples_beside(page, "#neglabel-image", "ood").nth(0).click()  # a packaged photo first, then the bad file
        page.locator("#neglabel-image img").first.wait_for(timeout=30_000)
        page.locator("#neglabel-image input[type='file']").set_input_files(str(bad))
        page.locator("#neglabel-run").click()
        messages = toast(page, message)
        assert messages == [next(m for m in messages if bad.name in m)], messages  # one message, naming the file
        assert card(page) == scored and not error_badges(page, *OUTPUTS)  # what was shown stays, as it was
        close_toasts(page)
    assert "Traceback" not in page.content()

    rocket = photos.by_name("cat").path.with_name("rocket.jpg")  # scikit-image's rocket: two classes named missile
    page.locator("#neglabel-image input[type='file']").set_input_files(str(rocket))
    page.locator("#neglabel-run").click()
    page.locator("#neglabel-card").get_by_text("rocket.jpg").wait_for(timeout=120_000)
    for plot in ("neglabel-id-plot", "neglabel-negative-plot"):
        labels = plot_labels(page, plot)
        assert len(labels) == len(set(labels)) == 10, labels  # one bar per class
    assert sum("missile (" in label for label in plot_labels(page, "neglabel-id-plot")) == 2

    page.locator("#neglabel-browse").get_by_text("Browse the mined negative labels").click()
    page.locator("#neglabel-query textarea, #neglabel-query input").first.fill("ship")
    page.locator("#neglabel-search").click()
    page.locator("#neglabel-found").get_by_text("whole word").wait_for(timeout=30_000)
    rows = [line.lower() for line in page.locator("#neglabel-table").inner_text().splitlines() if "ship" in line.lower()]
    assert re.search(r"\bship\b", rows[0]), rows[:5]  # a whole word first, not "censorship"
    page.close()


def test_api_refuses_bad_images_in_one_line(offline_app, tmp_path):
    """The same checks on the API path, for every tab that takes an image."""
    client = Client(offline_app, verbose=False)
    calls = {"/neglabel_score": (100, 0.01), "/context": (), "/noise_run": ("", 1, None, "squared", "skip", 0, -5)}
    for bad, message in ((not_an_image(tmp_path), "not an image"), (too_many_pixels(tmp_path), "over the limit")):
        for api_name, rest in calls.items():
            with pytest.raises(Exception, match=message) as raised:
                client.predict(handle_file(str(bad)), *rest, api_name=api_name)
            assert "\n" not in str(raised.value) and "Traceback" not in str(raised.value)


@pytest.mark.browser
def test_context_labels_walk(offline_app, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(offline_app)
    page.get_by_role("tab", name="Context labels").click()
    examples_beside(page, "#context-image").nth([p.name for p in photos.photos("id")].index("coffee")).click()
    page.locator("#context-image img").first.wait_for(timeout=30_000)
    page.locator("#list-context").click()
    page.locator("#main-object").get_by_text("espresso").wait_for(timeout=300_000)
    labels = page.locator("#context-labels textarea").input_value()
    assert labels.strip() and "Stand-in" in page.locator("#context-standin").inner_text()
    examples_beside(page, "#context-image").nth(0).click()
    page.locator("#context-image input[type='file']").set_input_files(str(not_an_image(tmp_path)))
    page.locator("#list-context").click()
    assert toast(page, "not an image") == ["notes.png: not an image (or not JPEG, PNG, GIF, BMP, TIFF or WebP)"]
    assert page.locator("#context-labels textarea").input_value() == labels
    assert not error_badges(page, "context-labels", "context-prompt", "main-object")
    page.close()
