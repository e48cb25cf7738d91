"""Stage 1 end to end on the offline suite (real weights): `synood select` and `synood generate` on packaged
photos, then the Noise optimisation and Synthetic pairs tabs in the real app, by gradio_client and Chromium."""
import json

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from synood.data import photos
from synood.models.classical import SIZE
from tests.helpers.browser import SCREENSHOTS, examples_beside, set_number

def test_generate_on_the_offline_suite(offline_generation):
    records = [json.loads(line) for line in (offline_generation / "manifest.jsonl").read_text().splitlines()]
    assert [r["class_name"] for r in records] == ["Egyptian Mau", "orange"]
    for record in records:
        losses = [step["loss"] for step in record["iterations"]]
        assert len(losses) == 3 and losses[-1] < losses[0], losses
        assert record["energy_after"] > record["energy_before"]  # pushed toward OOD
        assert record["context"] and record["prompt"] == "A photo only remain " + ", ".join(record["context"])[:73]
        assert record["negative_label"] and record["generator"].startswith("Classical object eraser")
        assert Image.open(offline_generation / record["image"]).size == (SIZE, SIZE)


def test_client_runs_the_noise_optimisation(offline_app):
    client = Client(offline_app, verbose=False)
    labels, prompt, plot, shown, source, frame, stats, status, made = client.predict(
        handle_file(str(photos.by_name("cat").path)), "floor\ncushion", 3, None, "squared", "skip", 0, -5,
        api_name="/noise_run")
    assert prompt == "A photo only remain floor, cushion" and labels == "floor\ncushion"
    assert shown["value"] == 3 and stats.startswith("**Iteration 3 of 3**") and status == "Done: 3 of 3 iterations."
    assert made == 3
    figure = json.loads(plot["plot"])
    losses = figure["data"][0]["y"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert Image.open(frame).size == Image.open(source).size == (SIZE, SIZE)
    with pytest.raises(Exception, match="Upload an image"):
        client.predict(None, "", 3, None, "squared", "skip", 0, -5, api_name="/noise_run")


@pytest.mark.browser
def test_noise_optimisation_tab_in_chromium(offline_app, browser):
    """Run: the curve gets a point per iteration; the slider steps back (Stop: tests/app/test_walk_noise.py)."""
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(offline_app)
    page.get_by_role("tab", name="Noise optimisation").click()
    cat = [p.name for p in photos.photos("id")].index("cat")
    examples_beside(page, "#noise-image").nth(cat).click()
    page.locator("#noise-image img").first.wait_for(timeout=30_000)
    set_number(page, "noise-iterations", "5")
    page.evaluate("""() => {  // every iteration line shown, in order
        window.seen = [];
        const stats = document.querySelector('#noise-stats');
        new MutationObserver(() => {
            const line = stats.innerText.match(/Iteration \\d+ of \\d+/);
            if (line && window.seen.at(-1) !== line[0]) window.seen.push(line[0]);
        }).observe(stats, {childList: true, subtree: true, characterData: true});
    }""")
    page.locator("#noise-run").click()
    stats = page.locator("#noise-stats")
    stats.get_by_text("Iteration 5 of 5").wait_for(timeout=300_000)
    seen = page.evaluate("() => window.seen")
    assert seen[-1] == "Iteration 5 of 5" and len(seen) >= 2, seen  # streamed: an earlier iteration was shown first
    assert all(line.endswith(" of 5") for line in seen), seen
    page.wait_for_function("() => document.querySelector('#noise-curve .js-plotly-plot').data[0].x.length === 5")
    assert page.locator("#noise-labels textarea").input_value().strip()  # the labeller filled them
    assert page.locator("#noise-prompt textarea").input_value().startswith("A photo only remain ")
    for image in ("#noise-source img", "#noise-frame img"):
        page.locator(image).first.wait_for(timeout=30_000)
    set_number(page, "noise-step-slider", "2")
    stats.get_by_text("Iteration 2 of 5").wait_for(timeout=30_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "noise-optimisation.png"), full_page=True)

    assert "Traceback" not in page.content()
    page.close()


@pytest.mark.browser
def test_generated_pair_opens_in_the_gallery(offline_app, browser, offline_generation):
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    page.goto(offline_app)
    page.get_by_role("tab", name="Synthetic pairs").click()
    page.locator("#pairs-path textarea, #pairs-path input").first.fill(str(offline_generation))
    page.locator("#pairs-load").click()
    page.locator("#pairs-page").get_by_text("2 pairs shown of 2").wait_for(timeout=60_000)
    page.wait_for_function("() => [...document.querySelectorAll('#pairs-gallery img')].length === 2 &&"
                           " [...document.querySelectorAll('#pairs-gallery img')].every(i => i.naturalWidth > 0)")
    page.locator("#pairs-gallery img").first.click()
    page.locator("#pairs-detail").get_by_text("n02124075/cat.png", exact=True).wait_for(timeout=30_000)
    for image in ("#pairs-source img", "#pairs-synthetic img"):
        page.locator(image).first.wait_for(timeout=30_000)
    page.locator("#pairs-curve .js-plotly-plot").first.wait_for(timeout=30_000)
    assert "Egyptian Mau" in page.locator("#pairs-detail").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "synthetic-pairs.png"), full_page=True)
    page.close()
