"""synood.pipelines.report and synood.pipelines.hardest on hand-made runs (no model): the evaluate, generate and
finetune pages hold their tables, plots and embedded thumbnails and name no local path; metrics.id_threshold agrees
with fpr_at_tpr; hardest picks the most ID-like OOD images and the least ID-like ID ones."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synood.config import cache_home
from synood.method.metrics import MetricError, fpr_at_tpr, id_threshold
from synood.pipelines import evaluation, report
from synood.pipelines.evaluation import Evaluation, Saved, ScoredSet, methods_of
from synood.pipelines.hardest import hardest, id_set_of
from synood.records.runs import Run, RunStore

DATA_URI = re.compile(r'<img src="data:image/jpeg;base64,[A-Za-z0-9+/=]{100,}"')


@pytest.mark.parametrize("convention", ["mos", "neglabel"])
@pytest.mark.parametrize("seed", range(40))
def test_the_share_of_ood_at_or_above_the_id_threshold_is_fpr_at_tpr(convention, seed):
    rng = np.random.default_rng(seed)
    ties = seed % 2 == 0  # rounded scores: ties within and across the sets
    id_scores, ood_scores = rng.normal(1, 1, rng.integers(1, 60)), rng.normal(0, 1, rng.integers(1, 60))
    if ties:
        id_scores, ood_scores = id_scores.round(1), ood_scores.round(1)
    for tpr in (0.95, 0.9, 0.8, 0.5, 1.0):
        threshold = id_threshold(id_scores, tpr, convention)
        assert np.mean(ood_scores >= threshold) == fpr_at_tpr(id_scores, ood_scores, tpr, convention)
        assert np.mean(id_scores >= threshold) >= (tpr if convention == "mos" else 0)


def test_id_threshold_by_hand_and_its_refusals():
    id_scores = [1.0, 2.0, 3.0, 4.0]
    assert id_threshold(id_scores, 0.75, "mos") == 2.0 and id_threshold(id_scores, 0.95, "mos") == 1.0
    # NegLabel: recall 3/4 at 2 is nearest 0.75; its lowest candidate lies just above the next lower ID score, 1
    assert id_threshold(id_scores, 0.75, "neglabel") == np.nextafter(1.0, 2.0)
    assert fpr_at_tpr(id_scores, [1.5], 0.75, "neglabel") == 1.0 and 1.5 >= id_threshold(id_scores, 0.75, "neglabel")
    with pytest.raises(MetricError, match="openood.*OOD scores"):
        id_threshold(id_scores, 0.95, "openood")
    with pytest.raises(MetricError, match="tpr must be"):
        id_threshold(id_scores, 0.0)


def _image(path: Path, colour) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)
    return path


def _evaluation(root: Path, bootstrap: int = 0) -> Evaluation:
    """An ID set and two OOD sets of tiny images with two scores: `neglabel` ranks by index, `mcm` the other way;
    one OOD file is deleted afterwards (its thumbnail must become a placeholder)."""
    sizes = {"ID": 8, "textures": 5, "docs": 4}
    sets = {}
    for offset, (name, n) in enumerate(sizes.items()):
        paths = [_image(root / name / f"{name}-{i}.png", (40 * offset, 20 * i, 100)) for i in range(n)]
        base = torch.arange(n, dtype=torch.float32) / n + (1.0 if name == "ID" else 0.3 * offset)
        sets[name] = ScoredSet(str(root / name), paths, [], {"neglabel": base, "mcm": -base})
    titles = {"neglabel": "NegLabel", "mcm": "MCM"}
    groups = {"near": ["textures"], "far": ["docs"]}
    result = Evaluation("ID", sets, methods_of(sets, titles, ["mos", "openood"], "ID", bootstrap, 1, groups),
                        ["mos", "openood"], suite="tiny", bootstrap={"resamples": bootstrap, "seed": 1} if bootstrap
                        else None, groups=groups)
    return result


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def store(home):
    return RunStore(home / "runs.sqlite")


def _no_local_path(page: str, *paths: Path) -> None:
    for path in (*paths, cache_home(), Path.home()):
        assert str(path) not in page, path


def test_hardest_picks_the_most_id_like_ood_and_the_least_id_like_id(tmp_path):
    result = _evaluation(tmp_path)
    saved = Saved(result.to_dict(), result.sets)
    assert id_set_of(saved) == "ID"
    found = hardest(saved, "neglabel", 3)
    # neglabel: ID i/8 + 1; textures i/5 + 0.3; docs i/4 + 0.6 -> docs 3 (1.35), then docs 2 and textures 4 (1.1)
    assert found.ood[0].set == "docs" and found.ood[0].index == 3
    assert {(c.set, c.index) for c in found.ood[1:]} == {("docs", 2), ("textures", 4)}
    assert [c.score for c in found.ood] == sorted((c.score for c in found.ood), reverse=True)
    assert [(c.set, c.index) for c in found.id] == [("ID", 0), ("ID", 1), ("ID", 2)]
    assert found.ood[0].score == pytest.approx(1.35) and found.ood[0].path.name == "docs-3.png"
    reverse = hardest(saved, "mcm", 2, sets=["textures"])
    assert [(c.set, c.index) for c in reverse.ood] == [("textures", 0), ("textures", 1)]
    assert [c.index for c in reverse.id] == [7, 6]
    assert hardest(saved, "mcm", 0).ood == [] and len(hardest(saved, "mcm", 100).ood) == 9
    with pytest.raises(evaluation.EvaluationError, match="no 'energy' scores"):
        hardest(saved, "energy", 2)
    with pytest.raises(evaluation.EvaluationError, match="no OOD set 'ID'"):
        hardest(saved, "mcm", 2, sets=["ID"])


def test_an_evaluate_report_holds_its_tables_histograms_and_hardest_cases(tmp_path, home, store):
    result = _evaluation(tmp_path / "data", bootstrap=50)
    run = evaluation.record(store, {"models": {"suite": "tiny"}}, result, {"suite": "tiny"}, home)
    (tmp_path / "data" / "docs" / "docs-3.png").unlink()  # the hardest OOD image is gone since
    page = report.html(store.get(run.id), store, cases=3)
    saved = evaluation.reopen(run.artifacts["evaluation"])
    for method in saved.report["methods"].values():
        for entry in [*(s["mos"] for s in method["sets"].values()), method["average"]["mos"],
                      method["groups"]["near"]["openood"], method["groups"]["far"]["openood"]]:
            half = (entry["ci95"]["fpr95"][1] - entry["ci95"]["fpr95"][0]) / 2
            assert f"{entry['fpr95']:.2f}<span class=\"ci\">±{half:.2f}</span>" in page
            assert f"{entry['auroc']:.2f}" in page
    assert page.count('<table class="metrics"') == 2 and "Average near" in page and "Average far" in page
    assert page.count('data-figure="histogram-') == 2 and "95% ID threshold (mos)" in page
    assert page.count("plotly.js v") == 1  # the bundle, once
    assert page.count('<section class="hardest"') == 2 and "missing: docs-3.png" in page
    assert len(DATA_URI.findall(page)) >= 5 and "Tiny (random weights)" in page
    _no_local_path(page, tmp_path, home)


def test_an_evaluate_run_without_saved_scores_reports_its_averages(tmp_path, store):
    old = store.create("evaluate", {}, {"id": str(tmp_path / "id"), "ood": {"textures": str(tmp_path / "tex")},
                                        "suite": "offline", "methods": ["neglabel"], "conventions": ["mos"]})
    store.update(old.id, status="completed", summary={"neglabel": {"mos": {"auroc": 91.25, "fpr95": 40.5,
                                                                           "aupr_in": 80.0, "aupr_out": 70.0}}})
    page = report.html(store.get(old.id), store)
    assert report.NOT_SAVED in page and "91.25" in page and "40.50" in page and "tex" in page
    assert "plotly.js v" not in page and "Offline (real weights from pip" in page
    _no_local_path(page, tmp_path)
    running = store.create("evaluate", {}, {"id": str(tmp_path / "id"), "ood": {}})
    assert "This run is running and recorded no metrics." in report.html(store.get(running.id), store)


def _pair(folder: Path, i: int, source: Path) -> dict:
    image = _image(folder / "images" / f"pair-{i}.png", (200, 50 * i, 0))
    return {"id": f"item-{i}", "source": str(source), "class": "n02123045", "class_index": 281,
            "class_name": "tabby cat", "image": str(image.relative_to(folder)), "prompt": "a photo",
            "negative_label": f"label {i}", "predicted_before": "tabby", "predicted_after": "tiger",
            "generator": "tiny", "classifier": "tiny", "energy_before": -5.0, "energy_after": -4.0 + i,
            "id_score_before": 0.9, "id_score_after": 0.5, "negative_similarity": 0.3,
            "context": ["sofa", "blanket"], "iterations": [{"index": 0, "loss": 1.0, "energy": -5.0}], "seed": 3}


def test_a_generate_report_shows_settings_counts_and_pairs(tmp_path, store):
    folder = tmp_path / "gen"
    sources = [_image(tmp_path / "train" / f"src-{i}.png", (0, 80, 40 * i)) for i in range(3)]
    records = [_pair(folder, i, s) for i, s in enumerate(sources)]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    sources[2].unlink()
    run = store.create("generate", {"models": {"suite": "tiny"}, "synthesis": {"iterations": 3, "loss": "squared"}},
                       {"selection": str(tmp_path / "sel.jsonl"), "out": str(folder), "items": 3, "processes": 1,
                        "components": {"generator": "tiny-diffusion", "labeller": "tiny-llava"}})
    store.update(run.id, status="completed", summary={"merged": 3, "items": 3},
                 artifacts={"manifest": str(folder / "manifest.jsonl")})
    page = report.html(store.get(run.id), store, pairs=2)
    assert page.count('<div class="pair">') == 2 and "The first 2 of 3" in page
    assert len(DATA_URI.findall(page)) == 4 and "label 1" in page and "sofa, blanket" in page
    assert "energy -5.000 → -3.000 (Δ +2.000)" in page and "tiny-diffusion" in page and "squared" in page
    assert "missing: src-2.png" in report.html(store.get(run.id), store)
    _no_local_path(page, tmp_path)


def test_a_finetune_report_plots_its_losses_and_shows_its_before_after(tmp_path, home, store):
    run = store.create("finetune", {"models": {"suite": "tiny"}, "projection": {"epochs": 2}},
                       {"generation": str(tmp_path / "gen"), "suite": "tiny", "encoder": "tiny-vit", "synthetic": 4})
    for stage, epoch, loss in (("projection", 1, 0.9), ("projection", 2, 0.7), ("negatives", 1, 0.5)):
        store.log_epoch(run.id, stage, epoch, {"loss": loss, "accuracy": 0.5, "lr": 1e-3})
    detector = home / "runs" / run.id / "detector.safetensors"
    detector.parent.mkdir(parents=True)
    detector.write_bytes(b"x" * 3000)
    store.update(run.id, status="completed", artifacts={"detector": str(detector)}, summary={"epochs": 3})
    evaluation.record(store, {}, _evaluation(tmp_path / "data"), {"finetune_run": run.id, "detector": str(detector)},
                      home)  # the app's before/after
    cli = store.create("evaluate", {}, {"id": "/id", "ood": {"textures": "/tex"}, "methods": ["synood"],
                                        "conventions": ["mos"], "checkpoint": str(detector)})  # an old CLI row
    store.update(cli.id, status="completed", summary={"synood": {"mos": {"auroc": 97.5, "fpr95": 12.25}}})
    store.create("evaluate", {}, {"id": "/id", "ood": {}, "checkpoint": "/other.safetensors"})  # another detector
    page = report.html(store.get(run.id), store)
    assert 'data-figure="losses"' in page and page.count("plotly.js v") == 1
    assert "detector.safetensors: 3,000 bytes" in page and page.count('<section class="evaluation"') == 2
    assert page.count('<table class="metrics') == 2 + 1 and '"name":"negatives"' in page.replace(" ", "")
    assert "97.50" in page and "12.25" in page and report.NOT_SAVED in page
    _no_local_path(page, tmp_path, home)


def test_a_kind_without_a_report_is_one_message(store):
    run = Run("r1", "export", "completed", 0.0, 0.0, "host", 1, {}, {})
    with pytest.raises(report.ReportError, match="'export' run: reports exist for evaluate, generate, finetune"):
        report.html(run, store)


def test_redact_keeps_names_and_drops_the_folders_above():
    text = 'folder /tmp/pytest-of-me/x/ID, file "/home/me/w.safetensors", hf-hub:org/repo, https://a.b/c/d, 1/2'
    assert report.redact(text) == ('folder …/ID, file "…/w.safetensors", hf-hub:org/repo, https://a.b/c/d, 1/2')
    assert report.redact("~/data/id/") == "…/id"
