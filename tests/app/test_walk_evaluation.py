"""A newcomer's walk through the Evaluation tab in headless Chromium, against the real offline app: bad input said in
one toast each, an evaluation of packaged photos with bootstrap and seed at their maximums under every convention
(the table with intervals, the histogram with its 95 %-ID threshold, the hardest cases, two scores side by side), a
hardest case opened and scored in the Negative labels tab and sent (from there, and straight from the gallery) to
Noise optimisation with its context labels, Stop in the middle of a run and Resume to finish it under its id, a
reload in the middle of another (the page finds it again and shows it when it completes), an unreadable file skipped
and said so; the same through gradio_client."""
import re
import shutil

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from synood.config import cache_home
from synood.data import photos
from synood.records import runs
from tests.helpers.browser import new_run, SCREENSHOTS, close_toasts, toast

SLOW = 300_000  # ms
RUN_BOX = "#evaluation-run-id textarea, #evaluation-run-id input"
STATUS = "#evaluation-status"
LABELLED = "() => ((document.querySelector('#noise-labels textarea') || {}).value || '').length > 0"


def store() -> runs.RunStore:
    return runs.store_for(cache_home())  # the session's SYNOOD_HOME, which the shared app uses


def copies(folder, names):
    """The packaged photos `names` copied into `folder` (the app reads only under its data root)."""
    folder.mkdir(parents=True)
    for name in names:
        photo = photos.by_name(name)
        shutil.copy(photo.path, folder / f"{name}{photo.path.suffix}")
    return folder


def noise(folder, count):
    """`count` distinct random images never seen before (even with a reused $SYNOOD_TEST_CACHE): nothing cached, so
    an evaluation of them takes a while."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng()
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id} textarea, #{elem_id} input").first.fill(text)


def number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.fill(value)
    box.press("Tab")


def launch(page) -> str:
    return new_run(page, "#evaluation-run", RUN_BOX)


@pytest.mark.browser
def test_walk_the_evaluation_tab(offline_app, browser, tmp_path):
    id_folder = copies(tmp_path / "id", [p.name for p in photos.photos("id")[:8]])
    textures = copies(tmp_path / "textures", ["brick", "grass", "gravel"])
    docs = copies(tmp_path / "docs", ["page", "text", "notes"])
    (docs / "broken.jpg").write_bytes(b"not a jpeg")  # skipped and said so
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(offline_app)
    page.get_by_role("tab", name="Evaluation").click()
    page.locator(RUN_BOX).first.wait_for()

    page.locator("#evaluation-run").click()
    toast(page, "Give an ID folder first.")
    fill(page, "evaluation-id", str(id_folder))
    page.locator("#evaluation-run").click()
    toast(page, "Give at least one OOD folder")
    fill(page, "evaluation-ood", f"textures={textures}\n{tmp_path / 'missing'}")
    page.locator("#evaluation-run").click()
    toast(page, "missing")
    fill(page, "evaluation-ood", "/etc")
    page.locator("#evaluation-run").click()
    toast(page, "outside")

    fill(page, "evaluation-ood", f"textures={textures}\n{docs}")
    number(page, "evaluation-bootstrap", "10000")  # both numbers at their maximums
    number(page, "evaluation-seed", str(2**31 - 1))
    page.locator("#evaluation-convention").click()
    page.get_by_role("option", name="all three").click()
    run_id = launch(page)
    page.locator(STATUS).get_by_text(f"Run {run_id} · completed").wait_for(timeout=SLOW)
    page.locator(STATUS).get_by_text("1 unreadable image files were skipped").wait_for(timeout=60_000)
    table = page.locator("#evaluation-table")
    table.locator("table[data-convention='neglabel']").wait_for(timeout=60_000)
    assert "±" in table.inner_text() and "textures" in table.inner_text() and "docs" in table.inner_text()
    assert store().get(run_id).inputs["bootstrap"] == {"resamples": 10000, "seed": 2**31 - 1}
    page.wait_for_function("() => { const p = document.querySelector('#evaluation-histogram .js-plotly-plot');"
                           " return p && p.layout && p.layout.shapes && p.layout.shapes.length === 1; }",
                           timeout=60_000)  # the threshold keeping 95 % of ID
    cases = page.locator("#evaluation-hardest .thumbnail-item")
    cases.first.wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('#evaluation-hardest .thumbnail-item').length === 14",
                           timeout=60_000)  # 8 OOD cases asked for but 6 readable OOD images; 8 ID ones
    page.wait_for_function("() => { const p = document.querySelector('#evaluation-scatter .js-plotly-plot');"
                           " return p && p.data && p.data.length === 3"
                           " && p.layout.title.text.startsWith('NegLabel against MCM'); }", timeout=60_000)
    page.locator("#evaluation-hardest").scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#evaluation-hardest img')].every("
                           "i => i.complete && i.naturalWidth > 0)", timeout=60_000)
    close_toasts(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "evaluation.png"), full_page=True)

    page.locator("#evaluation-report").click()  # the run's self-contained HTML report, downloaded
    with page.expect_download(timeout=SLOW) as download:
        page.locator("#evaluation-download").click()
    report = download.value.path().read_text()
    assert download.value.suggested_filename == f"synood-evaluate-{run_id}.html"
    assert "data-convention=\"neglabel\"" in report and str(tmp_path) not in report

    linked = browser.new_page(viewport={"width": 1400, "height": 1000})  # a link with the run id reopens it
    linked.goto(f"{offline_app}?run={run_id}")
    linked.locator("#evaluation-table table").first.wait_for(timeout=120_000)
    assert linked.locator(RUN_BOX).first.input_value() == run_id
    linked.goto(f"{offline_app}?run=no-such-run")
    toast(linked, "The link's run cannot be opened")
    linked.close()

    caption = cases.first.inner_text()  # the OOD image NegLabel found most in-distribution, opened and scored
    cases.first.click()
    card = page.locator("#neglabel-card")
    card.get_by_text("S(x)").wait_for(timeout=SLOW)
    shown = re.search(r"S\(x\) = ([0-9.]+)", card.inner_text()).group(1)
    assert float(shown) == pytest.approx(float(re.search(r"score ([0-9.e-]+)", caption).group(1)), abs=1e-3)
    assert " · ID: " in caption and " · negative: " in caption  # the labels the detector sees in it
    assert caption.split(" · ")[0] in ("textures (OOD)", "docs (OOD)")
    thresholds = page.locator("#neglabel-thresholds").inner_text()  # every score against this run's thresholds
    assert thresholds.startswith(f"Against the 95 %-ID thresholds of evaluation run {run_id}")
    assert all(title in thresholds for title in ("NegLabel", "MCM", "MSP", "Energy"))

    page.locator("#neglabel-boundary").click()  # the inspected image, sent to Noise optimisation with its labels
    page.wait_for_function(LABELLED, timeout=SLOW)
    assert page.locator("#noise-image img").count() == 1
    page.locator("#noise-labels textarea").first.fill("")

    page.get_by_role("tab", name="Evaluation").click()  # a hardest case sent straight to Noise optimisation
    page.locator("#evaluation-click-action").get_by_text("makes a boundary sample").click()
    cases.nth(1).click()
    page.wait_for_function(LABELLED, timeout=SLOW)
    assert page.locator("#noise-image img").count() == 1
    page.get_by_role("tab", name="Evaluation").click()
    page.locator("#evaluation-click-action").get_by_text("inspects it").click()
    slow = noise(tmp_path / "noise", 160)
    fill(page, "evaluation-ood", f"noise={slow}")
    number(page, "evaluation-bootstrap", "0")
    stopped = launch(page)
    page.locator("#evaluation-stop").click()
    page.locator(STATUS).get_by_text(f"Run {stopped} · stopped").wait_for(timeout=SLOW)
    assert store().get(stopped).message.startswith("stopped")
    page.locator(STATUS).get_by_text("press Resume").wait_for(timeout=60_000)
    page.locator("#evaluation-resume").click()  # the same run goes on under its id (the images encoded are cached)
    page.locator(STATUS).get_by_text(f"Run {stopped} · completed").wait_for(timeout=SLOW)
    table.locator("table").first.wait_for(timeout=120_000)
    assert page.locator(RUN_BOX).first.input_value() == stopped and "noise" in table.inner_text()

    fill(page, "evaluation-ood", f"noise={noise(tmp_path / 'more', 160)}")
    reloaded = launch(page)
    page.reload()  # mid-run: the run goes on in the app, and the page shows it again
    page.get_by_role("tab", name="Evaluation").click()
    page.wait_for_function(f"() => document.querySelector({RUN_BOX!r}).value === {reloaded!r}", timeout=120_000)
    page.locator(STATUS).get_by_text(f"Run {reloaded} · completed").wait_for(timeout=SLOW)
    table.locator("table").first.wait_for(timeout=120_000)
    assert "noise" in table.inner_text()
    assert "Traceback" not in page.content()
    page.close()


def test_the_evaluation_api_runs_and_refuses_bad_input(offline_app, tmp_path):
    client = Client(offline_app, verbose=False)
    id_folder = copies(tmp_path / "id", [p.name for p in photos.photos("id")[:4]])
    textures = copies(tmp_path / "textures", ["brick", "grass"])
    args = ["folders", str(id_folder), f"textures={textures}", "mos", "", "", ["mcm", "msp"], "none", "mos", 0, 0]
    with pytest.raises(Exception, match="Pick at least one score"):
        client.predict(*args[:6], [], *args[7:], api_name="/evaluation_run")
    with pytest.raises(Exception, match="'bogus' .* is not in the list of choices"):
        client.predict(*args[:6], ["mcm", "bogus"], *args[7:], api_name="/evaluation_run")
    with pytest.raises(Exception, match="greater than maximum value 10000"):
        client.predict(*args[:9], 10001, 0, api_name="/evaluation_run")
    run_id, _ = client.predict(*args, api_name="/evaluation_run")
    for _ in range(300):
        status = client.predict(run_id, 8, api_name="/evaluation_show")[0]
        if "completed" in status or "failed" in status:
            break
    assert f"Run {run_id}** · **completed" in status
    gallery = client.predict(run_id, "msp", "", 2, api_name="/evaluation_hardest")
    assert [item["caption"].split(" · ")[0] for item in gallery] == ["textures (OOD)"] * 2 + ["ID"] * 2
    with pytest.raises(Exception, match="This evaluation has no bogus score; it has mcm, msp"):
        client.predict(run_id, "bogus", "msp", api_name="/evaluation_side_by_side")
    with pytest.raises(Exception, match="no OOD set 'nope'"):
        client.predict(run_id, "msp", "nope", 2, api_name="/evaluation_hardest")
    with pytest.raises(Exception, match=f"Run {run_id} is already completed"):
        client.predict(run_id, api_name="/evaluation_resume")
