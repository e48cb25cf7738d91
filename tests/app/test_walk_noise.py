"""A person's walk through the Noise optimisation tab of the real offline app, in Chromium: every control at its
limits, Stop mid-run, a reload mid-run, a bad file after clicking a packaged photo."""
from __future__ import annotations

import pytest

from synood.data import photos
from tests.helpers.browser import (SCREENSHOTS, close_toasts, error_badges, examples_beside, not_an_image,
                                   set_number, toast)

OUTPUTS = ("noise-curve", "noise-source", "noise-frame", "noise-labels", "noise-prompt", "noise-stats")
RUN_WAIT = 300_000


def curve_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('#noise-curve .js-plotly-plot');"
                         " return p && p.data ? p.data[0].x.length : 0; }")


def wait_points(page, count: int) -> None:
    """Wait until the loss curve has `count` points (plotly draws after the status line updates)."""
    page.wait_for_function("n => { const p = document.querySelector('#noise-curve .js-plotly-plot');"
                           " return p && p.data && p.data[0].x.length === n; }", arg=count, timeout=30_000)


def wait_iteration(page, at_least: int, of: int) -> None:
    """Wait until the page shows iteration `at_least` of `of`, or a later one (each shows for a moment only)."""
    page.wait_for_function("([k, n]) => { const m = document.querySelector('#noise-stats').innerText"
                           ".match(/Iteration (\\d+) of (\\d+)/); return m && +m[2] === n && +m[1] >= k; }",
                           arg=[at_least, of], timeout=RUN_WAIT)


def run_to_end(page, iterations: int) -> None:
    page.locator("#noise-run").click()
    page.locator("#noise-status").get_by_text(f"Done: {iterations} of {iterations} iterations.").wait_for(
        timeout=RUN_WAIT)
    wait_points(page, iterations)


def open_tab(page, url: str, photo: str = "cat") -> None:
    page.goto(url)
    page.get_by_role("tab", name="Noise optimisation").click()
    examples_beside(page, "#noise-image").nth([p.name for p in photos.photos("id")].index(photo)).click()
    page.locator("#noise-image img").first.wait_for(timeout=30_000)


@pytest.mark.browser
def test_noise_controls_at_their_limits(offline_app, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    open_tab(page, offline_app)
    intro = page.locator("#noise-intro").inner_text()
    assert "no diffusion model" in intro and "Stand-in" in page.locator("#noise-standin").inner_text()
    page.locator("#noise-labels textarea").fill("sofa\ncarpet")  # the labeller is not needed for this walk
    set_number(page, "noise-iterations", "1")  # the slider's minimum
    set_number(page, "noise-step", "0")
    set_number(page, "noise-seed", "0")
    set_number(page, "noise-m-out", "-100")
    run_to_end(page, 1)
    assert "Iteration 1 of 1" in page.locator("#noise-stats").inner_text()
    assert not page.locator("#noise-step-slider").is_visible()  # one iteration: nothing to step through
    set_number(page, "noise-iterations", "2")
    set_number(page, "noise-step", "1000")
    set_number(page, "noise-seed", str(2**31 - 1))
    set_number(page, "noise-m-out", "100")
    run_to_end(page, 2)
    set_number(page, "noise-step-slider", "1")
    page.locator("#noise-stats").get_by_text("Iteration 1 of 2").wait_for(timeout=30_000)
    assert not error_badges(page, *OUTPUTS, "noise-status", "noise-step-slider")
    drawn = curve_points(page)

    examples_beside(page, "#noise-image").nth(0).click()  # a packaged photo, then a file that is not an image
    page.locator("#noise-image input[type='file']").set_input_files(str(not_an_image(tmp_path)))
    page.locator("#noise-run").click()
    assert toast(page, "not an image") == ["notes.png: not an image (or not JPEG, PNG, GIF, BMP, TIFF or WebP)"]
    assert curve_points(page) == drawn and not error_badges(page, *OUTPUTS)
    close_toasts(page)
    page.close()


@pytest.mark.browser
def test_noise_stop_and_reload_mid_run(offline_app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    open_tab(page, offline_app)
    page.locator("#noise-labels textarea").fill("sofa\ncarpet")
    set_number(page, "noise-iterations", "30")  # the slider's maximum
    page.locator("#noise-run").click()
    wait_iteration(page, 2, 30)
    on_screen = page.evaluate("""() => {  // read what the page shows and press Stop in the same instant
        const line = document.querySelector('#noise-stats').innerText.match(/Iteration (\\d+) of/);
        document.querySelector('#noise-stop').click();
        return Number(line[1]);
    }""")
    stopped = page.locator("#noise-status").get_by_text("Stopped after iteration")
    stopped.wait_for(timeout=60_000)
    at = int(stopped.inner_text().split("iteration ")[1].split(" ")[0])
    assert on_screen <= at <= on_screen + 1 and "of 30" in stopped.inner_text()  # within one iteration of the press
    wait_points(page, at)
    page.wait_for_timeout(2000)
    assert curve_points(page) == at and page.locator("#noise-frame img").count()  # what was made stays
    assert page.locator("#noise-step-slider").is_visible() and not error_badges(page, *OUTPUTS, "noise-status")
    page.screenshot(path=str(SCREENSHOTS / "noise-stopped.png"), full_page=True)

    page.locator("#noise-run").click()  # again, then reload the page mid-run
    wait_iteration(page, 1, 30)
    open_tab(page, offline_app)
    page.locator("#noise-labels textarea").fill("ocean\nbeach")
    set_number(page, "noise-iterations", "2")
    run_to_end(page, 2)  # the abandoned run let go of the generator; the new one ran
    page.close()
