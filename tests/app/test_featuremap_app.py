"""The Feature map tab for real: the offline suite's app (real EfficientNet-Lite0 + MiniLM weights) on packaged photos
as ID, a written generation as synthetic and the OOD photos, driven by gradio_client and headless Chromium."""
import json
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from bench.common.drawn_pairs import write_generation
from synood.data import photos
from tests.helpers.browser import SCREENSHOTS
from ui.featuremap_tab import STOPPED_ENCODING

SLOW = 600  # the first offline mining, when this file runs alone
IDS, OODS = len(photos.photos("id")), len(photos.photos("ood"))  # the packaged photos: the ID and OOD folders
# labelled by their folder, named as `synood select` reads it: a class name with "_" for spaces, or a WNID
IN_CLASS_FOLDERS = {"cat": "Egyptian_Mau", "football": "soccer_ball", "orange": "n07747607"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """Copies (never the repository's files) of the packaged ID and OOD photos, and a 10-pair generation."""
    root = tmp_path_factory.mktemp("featuremap")
    for split in ("id", "ood"):
        for photo in photos.photos(split):
            folder = root / split / IN_CLASS_FOLDERS.get(photo.name, "")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo.path, folder / f"{photo.name}{photo.path.suffix}")
    write_generation(root / "gen", 10)
    (root / "two").mkdir()
    for photo in photos.photos("id")[:2]:
        shutil.copy(photo.path, root / "two" / photo.path.name)
    (root / "bad.safetensors").write_bytes(b"not a detector")
    return root


@pytest.fixture(scope="module")
def detectors(folders) -> tuple[Path, Path]:
    """Detector files for the offline suite (a seeded random projection, two tuned negatives), and one that
    names another encoder; built in this process, whose detector reads the mined negatives from the session cache."""
    import torch

    from synood.records import checkpoint
    from synood.config import Config
    from synood.pipelines.detect import Detector
    from synood.method.finetune import Projection
    from synood.models import Suite

    config = Config()
    config.models.suite = "offline"
    suite = Suite.from_config(config.models)
    detector = Detector(suite.get("encoder"), suite.get("classifier"), config.neglabel)
    torch.manual_seed(0)
    meta = {"encoder": detector.encoder.identity,
            "negatives_digest": checkpoint.negatives_digest([label.word for label in detector.negatives])}
    tuned = checkpoint.TunedDetector(Projection(detector.id_features.shape[1]).eval(), torch.arange(2),
                                     detector.negative_features[:2].clone(), meta)
    checkpoint.save_detector(folders / "tuned.safetensors", tuned)
    tuned.meta = dict(meta, encoder="another encoder")
    checkpoint.save_detector(folders / "other.safetensors", tuned)
    return folders / "tuned.safetensors", folders / "other.safetensors"


def draw(client: Client, folders: Path, *, id_folder="id", generation="gen", ood="ood", checkpoint="",
         space="before", colour="group", cap=2000, started=True) -> list:
    """Every (plot, status) the map event yields after its first, in order. A draw that starts first empties the map
    and the status (an earlier map, hover panel or error never stays beside a new draw); one whose folders fail
    their checks (`started=False`) changes nothing on screen but its status line."""
    id_folder, generation, ood = (str(folders / name) if name else "" for name in (id_folder, generation, ood))
    job = client.submit(id_folder, generation, ood, checkpoint, space, colour, cap, api_name="/featuremap")
    job.result(timeout=SLOW)
    outputs = job.outputs()
    cleared = (None, "Reading and encoding the images...")
    assert (outputs[0] == cleared) == started, outputs[0]
    return outputs[1:] if started else outputs


def traces(plot: dict) -> list[dict]:
    return json.loads(plot["plot"])["data"]


def test_client_streams_pca_then_umap_with_hover_data(offline_app, folders):
    client = Client(offline_app, verbose=False)
    outputs = draw(client, folders)
    (preview, first), (final, last) = outputs[0], outputs[-1]
    assert all(plot == {"__type__": "update"} for plot, _ in outputs[1:-1])  # the status each second, not the map
    assert first.startswith(f"**PCA preview**; UMAP computing... (ID {IDS} · synthetic 10 · OOD {OODS})")
    assert last.startswith(f"**UMAP** of {IDS + 10 + OODS} points (ID {IDS} · synthetic 10 · OOD {OODS}) in ")
    assert json.loads(preview["plot"])["layout"]["title"]["text"] == "PCA of encoder features (before the projection)"
    assert json.loads(final["plot"])["layout"]["title"]["text"] == "UMAP of encoder features (before the projection)"
    drawn = {t["name"]: t for t in traces(final)}
    ids, synthetic, ood = drawn[f"ID ({IDS})"], drawn["synthetic (10)"], drawn[f"OOD ({OODS})"]
    sizes = [len(t["customdata"]) for t in traces(final)]
    assert sizes == sorted(sizes, reverse=True)  # largest group first: the smaller ones lie on top
    labels = {row[4]: row[1] for row in ids["customdata"]}
    assert labels["cat.png"] == "Egyptian Mau" and labels["orange.jpg"] == "orange"  # from their class folders
    assert labels["football.jpg"] == "soccer ball"
    assert labels["coffee.png"].endswith("(nearest label)")
    assert {row[4] for row in ood["customdata"]} == {f"{p.name}{p.path.suffix}" for p in photos.photos("ood")}
    assert all(" (from " in row[1] for row in synthetic["customdata"])  # negative label (from class)
    scores = {row[4]: row[2] for trace in (ids, ood) for row in trace["customdata"]}
    assert sum(scores[f"{p.name}{p.path.suffix}"] for p in photos.photos("id")) / IDS > \
        sum(scores[f"{p.name}{p.path.suffix}"] for p in photos.photos("ood")) / OODS  # NegLabel S(x): ID higher
    with urllib.request.urlopen(offline_app + ids["customdata"][0][3], timeout=30) as response:  # served thumbnail
        assert response.status == 200 and response.read(2) == b"\xff\xd8"

    recoloured = client.predict("neglabel", api_name="/featuremap_colour")
    assert [t["marker"].get("coloraxis") for t in traces(recoloured)] == ["coloraxis"] * 3
    assert json.loads(recoloured["plot"])["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "NegLabel"
    (again, status), = draw(client, folders)  # the same images again: UMAP from memory, so no preview
    assert traces(again)[0]["x"] == ids["x"] and status.startswith(f"**UMAP** of {IDS + 10 + OODS} points")


@pytest.mark.parametrize("inputs, message", [
    (dict(id_folder="", generation="", ood=""), "Give at least one of"),
    (dict(id_folder="missing"), "no such folder"),
    (dict(generation="id"), "no manifest.jsonl in this folder"),
    (dict(space="after"), "needs a fine-tuned detector file"),
    (dict(space="after", checkpoint="bad.safetensors"), "not a readable safetensors file"),
    (dict(space="after", checkpoint="other.safetensors"), "tuned on features of 'another encoder'"),
])
def test_client_says_what_is_wrong(offline_app, folders, detectors, inputs, message):
    if "checkpoint" in inputs:
        inputs["checkpoint"] = str(folders / inputs["checkpoint"])
    started = "checkpoint" in inputs  # a detector file is read only once the draw has started
    (plot, status), = draw(Client(offline_app, verbose=False), folders, started=started, **inputs)
    assert plot == {"__type__": "update"}  # no map: the one on screen stays (emptied, if the draw had started)
    assert status.startswith("**No map:**") and message in status.replace("\\", "")


def test_client_maps_after_the_projection(offline_app, folders, detectors):
    client = Client(offline_app, verbose=False)
    before = traces(draw(client, folders, cap=6)[-1][0])
    outputs = draw(client, folders, checkpoint=str(detectors[0]), space="after", cap=6, colour="synood")
    (_, first), (plot, status) = outputs[0], outputs[-1]
    figure = json.loads(plot["plot"])
    assert first.startswith("**PCA preview**") and status.startswith("**UMAP** of 18 points")
    assert figure["layout"]["title"]["text"] == "UMAP of features after the projection"
    assert figure["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "SynOOD"
    after = figure["data"]
    assert [row[4] for row in after[0]["customdata"]] == [row[4] for row in before[0]["customdata"]]
    assert [row[2] for row in after[0]["customdata"]] != [row[2] for row in before[0]["customdata"]]  # tuned S(x)
    assert after[0]["x"] != before[0]["x"]


def test_client_maps_few_points_by_pca_and_caps_groups(offline_app, folders):
    client = Client(offline_app, verbose=False)
    (plot, status), = draw(client, folders, id_folder="two", generation="", ood="")
    assert "PCA** of 2 points" in status and "UMAP needs more than 15" in status
    assert len(traces(plot)[0]["customdata"]) == 2
    (plot, status), = draw(client, folders, cap=3)  # 9 points: PCA alone, at once (no numba compile to wait for)
    assert "PCA** of 9 points" in status and "UMAP needs more than 15" in status
    assert [t["name"] for t in traces(plot)] == ["ID (3)", "synthetic (3)", "OOD (3)"]
    assert f"ID: 3 of {IDS} images (the cap per group)" in status.replace("\\", "")


def test_stop_ends_a_long_encoding(offline_app, tmp_path):
    rng = np.random.default_rng()  # unseeded: a feature cache kept across sessions must not know these images
    for index in range(1000):  # distinct noise images: each is encoded, about 25 s in all on 2 cores
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    client = Client(offline_app, verbose=False)
    job = client.submit(str(tmp_path), "", "", "", "before", "group", 2000, api_name="/featuremap")
    deadline = time.monotonic() + SLOW
    while not any((update.desc or "").startswith("Image features") for update in job.status().progress_data or []):
        assert time.monotonic() < deadline and not job.done()
        time.sleep(0.2)
    assert client.predict(api_name="/featuremap_stop") == STOPPED_ENCODING  # said at once
    stopped = time.monotonic()
    assert job.result(timeout=60)[1] == STOPPED_ENCODING
    assert time.monotonic() - stopped < 15  # after the batch being encoded, not after all 1000 images


def fill(page, box: str, value: str) -> None:
    page.locator(f"#{box} textarea, #{box} input").first.fill(value)


@pytest.mark.browser
def test_feature_map_in_chromium(offline_app, folders, browser):  # noqa: F811 (the imported fixture)
    """Draw: the PCA preview shows, then the UMAP; hovering a point shows its thumbnail, label and score."""
    page = browser.new_page(viewport={"width": 1280, "height": 1250})
    page.goto(offline_app)
    page.get_by_role("tab", name="Feature map").click()
    fill(page, "featuremap-id", str(folders / "two"))  # two points, PCA only: the page loads its plotting code
    page.locator("#featuremap-run").click()
    status = page.locator("#featuremap-status")
    status.get_by_text("PCA of 2 points").wait_for(timeout=SLOW * 1000)
    page.locator("#featuremap-plot .js-plotly-plot .point").first.wait_for(timeout=30_000)
    page.evaluate("""() => {  // every status and map title shown from now on, in order
        window.seen = [];
        const note = (text) => { if (text && window.seen.at(-1) !== text) window.seen.push(text); };
        new MutationObserver(() => {
            note(document.querySelector('#featuremap-status').innerText.split('\\n')[0]);
            const plot = document.querySelector('#featuremap-plot .js-plotly-plot');
            if (plot && plot.layout && plot.layout.title)
                note(`${plot.layout.title.text}: ${plot.querySelectorAll('.scatterlayer .point').length} points`);
        }).observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true});
    }""")
    for box, name in (("featuremap-id", "id"), ("featuremap-generation", "gen"), ("featuremap-ood", "ood")):
        fill(page, box, str(folders / name))
    fill(page, "featuremap-cap", "11")  # a map the client tests did not draw: UMAP computes, after a PCA preview
    page.locator("#featuremap-run").click()
    shown = 11 + 10 + min(11, OODS)
    status.get_by_text(f"UMAP of {shown} points").wait_for(timeout=SLOW * 1000)
    page.wait_for_function("() => window.seen.some(t => t.startsWith('UMAP of encoder'))")
    seen = page.evaluate("() => window.seen")
    preview = [seen.index(f"PCA preview; UMAP computing... (ID 11 · synthetic 10 · OOD {min(11, OODS)})"),
               seen.index(f"PCA of encoder features (before the projection): {shown} points")]
    assert max(preview) < seen.index(f"UMAP of encoder features (before the projection): {shown} points"), seen
    points = page.locator("#featuremap-plot .scatterlayer .trace:first-child .point")
    assert points.count() == 11
    page.wait_for_function("() => { const p = document.querySelector('#featuremap-plot .js-plotly-plot');"
                           " return p && p.featuremapListening; }", timeout=120_000)
    box = points.nth(0).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => { const i = document.querySelector('#featuremap-hover .featuremap-thumb');"
                           " return i && !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=30_000)
    panel = page.locator("#featuremap-hover")
    assert "ID · NegLabel " in panel.inner_text() and panel.locator(".featuremap-label").inner_text().strip()
    assert "Traceback" not in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "feature-map.png"), full_page=True)
    page.close()
