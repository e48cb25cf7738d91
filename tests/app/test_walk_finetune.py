"""A newcomer's walk through the Fine-tuning tab in headless Chromium, against the real offline app: the empty chart,
every number box at its declared minimum and at its maximum, a reload in the middle of a run (the run goes on and the
page finds it again), Stop, a before/after evaluation on the training folder (warned), and headers that never break
mid-word."""
from pathlib import Path

import pytest

from synood.records import runs
from synood.config import cache_home
from tests.helpers.browser import new_run

SLOW = 300_000  # ms
RUN_BOX = "#finetune-run textarea, #finetune-run input"
STATUS = "#finetune-status"
NUMBERS = ["finetune-projection-lr", "finetune-projection-epochs", "finetune-projection-batch", "finetune-negatives-lr",
           "finetune-negatives-epochs", "finetune-negatives-batch", "finetune-synthetic", "finetune-projection-seed",
           "finetune-negatives-seed", "finetune-subset-seed"]
BROKEN_WORDS = """(selector) => {  // header words the browser split over two lines, or cut off at the cell's edge
    const broken = [];
    for (const cell of document.querySelectorAll(selector)) {
        const content = cell.querySelector('.header-content') || cell;
        if (content.scrollWidth > content.clientWidth + 1) broken.push(`cut off: ${cell.innerText}`);
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const match of node.textContent.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
                if (lines.size > 1) broken.push(match[0]);
            }
        }
    }
    return broken;
}"""


def store() -> runs.RunStore:
    return runs.store_for(cache_home())  # the session's SYNOOD_HOME, which the shared app uses


def number(page, elem_id: str):
    return page.locator(f"#{elem_id} input").first


def limits(page) -> dict[str, tuple[float, float]]:
    """Each number box's declared (minimum, maximum), read from the page."""
    found = {}
    for elem_id in NUMBERS:
        box = number(page, elem_id)
        low, high = box.get_attribute("min"), box.get_attribute("max")
        assert low is not None and high is not None, f"{elem_id} declares no limits"
        found[elem_id] = float(low), float(high)
    return found


def set_all(page, values: dict[str, float]) -> None:
    for elem_id, value in values.items():
        box = number(page, elem_id)
        box.fill(str(int(value)) if value == int(value) else repr(value))
        box.press("Tab")


def open_tab(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Fine-tuning").click()
    page.locator(RUN_BOX).first.wait_for()


def launch(page) -> str:
    return new_run(page, "#finetune-launch", RUN_BOX)


@pytest.mark.browser
def test_walk_the_finetune_tab(offline_app, offline_generation, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    open_tab(page, offline_app)
    shown = page.locator(RUN_BOX).first
    shown.fill("")
    shown.press("Enter")  # no run shown: an empty chart, its axes titled, saying so
    page.locator(STATUS).get_by_text("Launch a run or pick one in the table").wait_for(timeout=120_000)
    page.wait_for_function("() => { const p = document.querySelector('#finetune-curve .js-plotly-plot');"
                           " return p && p.layout && p.layout.annotations.some(a => a.text === 'no epochs yet'); }",
                           timeout=120_000)
    titles = page.locator("#finetune-curve .g-xtitle, #finetune-curve .g-x2title, #finetune-curve .g-ytitle,"
                          " #finetune-curve .g-y2title").all_text_contents()
    assert {"loss", "share on its own label", "epoch (stages in order)"} <= {t.strip() for t in titles}, titles

    declared = limits(page)
    page.locator("#finetune-path textarea, #finetune-path input").first.fill(str(offline_generation))
    set_all(page, {elem_id: low for elem_id, (low, _) in declared.items()})  # every box at its minimum
    page.locator("#finetune-launch").click()  # 0 epochs in both stages: said plainly, nothing launched
    page.get_by_text("Nothing to train").first.wait_for(timeout=120_000)
    set_all(page, {"finetune-projection-epochs": 1})  # the smallest run there is: one epoch of batch 1 at lr 1e-6
    low_run = launch(page)
    page.locator(STATUS).get_by_text(f"Run {low_run} · completed · 1 of 1 epochs").wait_for(timeout=SLOW)

    low = store().get(low_run).config  # the conventions left at their defaults: the authors' code
    assert (low["projection"]["input"], low["negtune"]["parameter"], low["projection"]["schedule"]) == (
        "raw", "raw", "epoch")

    set_all(page, {elem_id: high for elem_id, (_, high) in declared.items()})  # every box at its maximum
    for elem_id, choice in (("finetune-projection-input", "unit-norm"), ("finetune-negatives-parameter", "unit-norm"),
                            ("finetune-schedule", "every batch")):  # and every convention at its other value
        page.locator(f"#{elem_id}").get_by_text(choice).click()
    high_run = launch(page)
    page.locator(STATUS).get_by_text(f"Run {high_run} · running").wait_for(timeout=SLOW)
    page.locator(STATUS).get_by_text("projection input unit · stage 3 parameters unit · cosine schedule per batch"
                                     ).wait_for(timeout=120_000)
    config = store().get(high_run).config
    assert config["projection"]["epochs"] == declared["finetune-projection-epochs"][1]
    assert config["negtune"]["seed"] == 2**31 - 1
    assert (config["projection"]["input"], config["negtune"]["parameter"], config["negtune"]["schedule"]) == (
        "unit", "unit", "batch")
    page.reload()  # mid-run: the run goes on in the app, and the page shows it again
    page.get_by_role("tab", name="Fine-tuning").click()
    page.wait_for_function(f"() => document.querySelector({RUN_BOX!r}).value === {high_run!r}", timeout=120_000)
    page.locator(STATUS).get_by_text(f"Run {high_run} · running").wait_for(timeout=120_000)
    page.locator("#finetune-runs [role=row]").filter(has_text=high_run).filter(has_text="running").first.wait_for(
        timeout=120_000)
    trained = len(store().epochs(high_run))
    page.locator("#finetune-stop").click()
    page.locator(STATUS).get_by_text(f"Run {high_run} · stopped").wait_for(timeout=SLOW)
    assert store().get(high_run).status == "stopped" and len(store().epochs(high_run)) >= max(trained, 1)

    shown.fill(low_run)
    shown.press("Enter")
    page.locator(STATUS).get_by_text(f"Run {low_run} · completed").wait_for(timeout=120_000)
    train = Path(offline_generation).parent / "train"  # where the generation's sources (its ID images) lie
    page.locator("#finetune-id textarea, #finetune-id input").first.fill(str(train))
    page.locator("#finetune-ood textarea, #finetune-ood input").first.fill(str(offline_generation))
    page.locator("#finetune-evaluate").click()
    note = page.locator("#finetune-note")
    note.get_by_text("These figures are not held-out").wait_for(timeout=SLOW)
    assert "the ID folder" in note.inner_text() and "holds the training folder" in note.inner_text()
    assert "the OOD folder" in note.inner_text()

    for table in ("#finetune-runs", "#finetune-metrics"):
        assert page.evaluate(BROKEN_WORDS, f"{table} th") == [], table
    assert "Traceback" not in page.content()
    page.screenshot(path=str(tmp_path / "walk-finetune.png"), full_page=True)  # for a person to look at; not a doc
    page.close()
