"""The app's tab handlers called directly, without a server or a browser: what they return for good input, one toast
(gr.Error, no traceback) for bad input, every registered standard score on the Negative labels card, an
evaluation resumed under its own id (or refused, saying why) and the Evaluation galleries' cached thumbnails."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
import torch

from synood.config import Config
from synood.data import photos
from synood.method import scorers
from synood.models import Suite
from synood.records.runs import ACTIVE, EvaluateRecord, Run
from tests.helpers.benchmarks import openood_layout
from ui.access import DataRoots
from ui.context_tab import ContextTab
from ui.detector import DetectorHolder
from ui.evaluation_tab import EvaluationTab
from ui.featuremap_tab import FeatureMapTab
from ui.finetune_tab import FinetuneTab
from ui.models_tab import ModelsTab
from ui.neglabel_tab import NegLabelTab
from ui.noise_tab import NoiseTab
from ui.pairs_tab import PairsTab
from ui.thumbnails import thumbnail_dir


@pytest.fixture(scope="module")
def config() -> Config:
    config = Config()
    config.models.suite, config.models.device = "offline", "cpu"
    return config


@pytest.fixture(scope="module")
def suite(config) -> Suite:
    return Suite.from_config(config.models)


@pytest.fixture(scope="module")
def neglabel(suite, config) -> NegLabelTab:
    return NegLabelTab(DetectorHolder.shared(suite, config), config.neglabel)


def not_an_image(folder: Path) -> Path:
    path = folder / "notes.png"
    path.write_text("these are notes, not pixels\n")
    return path


def toast(call, *args) -> str:
    """The one message `call(*args)` shows, checked to be a toast without a traceback in the log."""
    with pytest.raises(gr.Error) as shown:
        call(*args)
    assert shown.value.print_exception is False and "\n" not in shown.value.message
    return shown.value.message


class Toy(scorers.Scorer):
    """A score added to the registry only: the Negative labels card must show it without being told."""

    name, title, kind, needs = "toy", "Toy score", "post-hoc", frozenset({"logits"})

    def score(self, inputs: scorers.ScoreInputs) -> torch.Tensor:
        return torch.full((len(inputs.need("logits")),), 0.25)


def test_the_negative_labels_handler_scores_a_packaged_photo(neglabel, monkeypatch):
    monkeypatch.setitem(scorers.SCORERS, Toy.name, Toy)
    path = str(photos.by_name("coffee").path)
    analysis, card, id_plot, negative_plot, spread = neglabel.analyse(path, 100, 0.01)
    assert Path(path).name in card and "S(x) = " in card and "100 groups" in card and "temperature 0.01" in card
    assert "energy E(x) = -" in card  # the paper's sign: a photo's energy is negative
    for name in scorers.standard():
        if name not in ("neglabel", "energy"):  # NegLabel's S(x) is the card's main value
            assert f"{scorers.SCORERS[name].title} " in card, name
    assert "Toy score 0.25" in card and set(analysis.baselines) == set(scorers.standard()) - {"neglabel"}
    assert "espresso" in str(id_plot.to_dict()["data"][0]["y"])

    rescored, _ = neglabel.rescore(analysis, 7, 0.02)
    assert "7 groups" in rescored and "Toy score 0.25" in rescored
    assert toast(neglabel.rescore, analysis, 0, 0.01).startswith("Number of groups must be between 1 and ")
    rows, note = neglabel.search("ship")
    assert rows and "negative labels match" in note


def test_a_bad_image_is_one_toast_naming_the_file(neglabel, suite, config, tmp_path):
    bad = str(not_an_image(tmp_path))
    assert toast(neglabel.analyse, None, 100, 0.01) == "Upload an image or pick an example first."
    assert toast(neglabel.analyse, bad, 100, 0.01).startswith("notes.png: not an image")
    assert toast(ContextTab(suite, config.synthesis).list_context, bad).startswith("notes.png: not an image")
    stream = NoiseTab(suite, config.synthesis).run(bad, "", 1, None, "squared", "skip", 0, -5, "image", None)
    assert toast(next, stream).startswith("notes.png: not an image")


def test_the_pairs_handler_reads_only_under_the_data_roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "manifest.jsonl").write_text("")
    pairs = PairsTab(DataRoots.of([root]), -5.0)
    assert "outside the app's data roots" in toast(pairs.load, str(outside), "manifest", "ascending", 24)
    assert toast(pairs.load, " ", "manifest", "ascending", 24) == "Give a generation folder or its manifest.jsonl."
    assert toast(pairs.open_pair, "", "x") == "Load a generation folder or manifest first."


def test_the_other_tabs_handlers_answer_without_a_page(suite, config, tmp_path):
    assert 'data-suite="offline"' in ModelsTab(suite).table()
    context = ContextTab(suite, config.synthesis)
    assert context.prompt_for("table\ncup, table") == context.prompt_for("table, cup")

    local = Config()
    local.paths.home = str(tmp_path / "home")
    finetune = FinetuneTab(suite, local, DataRoots.of([tmp_path]))
    assert finetune.show("")[0] == "Launch a run or pick one in the table." and finetune.latest() == ""
    assert toast(finetune.stop, "") == "Launch a run or pick one in the table first."
    assert toast(finetune.launch, "", *[None] * 13) == "Give a generation folder or its manifest.jsonl first."

    feature_map = FeatureMapTab(DetectorHolder.shared(suite, config), config, DataRoots.of([tmp_path]))
    with pytest.warns(UserWarning, match="Give at least one of"):
        (plot, status, view), = list(feature_map.draw("", "", "", "", "before", "group", 10, None))
    assert status.startswith("**No map:** Give at least one of") and plot == view == gr.skip()


def photo_folder(folder: Path, names: list[str]) -> Path:
    """The packaged photos `names` copied into `folder` (the tab reads only under its data roots)."""
    folder.mkdir(parents=True)
    for name in names:
        photo = photos.by_name(name)
        shutil.copy(photo.path, folder / f"{name}{photo.path.suffix}")
    return folder


def finished(tab: EvaluationTab, run_id: str, timeout: float = 600) -> Run:
    """The run once its background job has finished."""
    deadline = time.monotonic() + timeout
    while (run := tab.store.get(run_id)).status in ACTIVE:
        assert time.monotonic() < deadline, f"run {run_id} still {run.status}: {run.message}"
        time.sleep(0.1)
    return run


def evaluation_tab(suite: Suite, home: Path, root: Path) -> EvaluationTab:
    config = Config()
    config.models.suite, config.models.device, config.paths.home = "offline", "cpu", str(home)
    return EvaluationTab(suite, config, DataRoots.of([root]))


def evaluated(tab: EvaluationTab, folder: Path) -> Run:
    """A completed evaluation of `folder`/id against `folder`/textures by MCM and MSP, launched in the tab."""
    run_id, rows = tab.launch("folders", str(folder / "id"), f"textures={folder / 'textures'}", "mos", "", "",
                              ["mcm", "msp"], "none", "mos", 0, 0)
    assert rows[0][0] == run_id and rows[0][3:6] == ["ID", "textures", "mcm, msp"]
    run = finished(tab, run_id)
    assert run.status == "completed", run.message
    return run


@pytest.fixture(scope="module")
def evaluation(suite, tmp_path_factory) -> tuple[EvaluationTab, Run, Path]:
    """An Evaluation tab (its own home, reading under one folder) and a completed evaluation of packaged photos."""
    root = tmp_path_factory.mktemp("evaluation")
    photo_folder(root / "id", [p.name for p in photos.photos("id")[:4]])
    photo_folder(root / "textures", ["brick", "grass", "gravel"])
    tab = evaluation_tab(suite, root / "home", root)
    return tab, evaluated(tab, root), root


def interrupted(tab: EvaluationTab, inputs: dict, config: dict | None = None) -> Run:
    """An evaluate run of `inputs` that was running when the app stopped (as a restarted app reads it)."""
    run = tab.store.create("evaluate", config or {}, inputs, status="running")
    tab.store.update(run.id, status="interrupted", message="KeyboardInterrupt: ")
    return tab.store.get(run.id)


def test_an_interrupted_evaluation_resumes_under_its_id_and_ends_as_a_fresh_one(evaluation):
    tab, fresh, _ = evaluation
    run = interrupted(tab, fresh.inputs, fresh.config)
    assert "press **Resume**" in tab.show(run.id)[0]
    status, rows = tab.resume(run.id)
    assert status.startswith(f"**Run {run.id}** · ") and run.id in [row[0] for row in rows]
    done = finished(tab, run.id)
    assert done.status == "completed" and done.message == "" and done.inputs == fresh.inputs
    assert done.summary == fresh.summary  # the same metrics from the same (cached) features
    saved, again = tab.saved(fresh), tab.saved(done)
    assert saved is not None and again is not None and again.report["run"] == run.id
    assert {k: v for k, v in again.report.items() if k != "run"} == {k: v for k, v in saved.report.items() if k != "run"}
    for name, scored in saved.sets.items():
        assert again.sets[name].paths == scored.paths
        assert all(torch.equal(again.sets[name].scores[key], values) for key, values in scored.scores.items())
    assert toast(tab.resume, run.id) == f"Run {run.id} is already completed: press Run for a new evaluation."


def test_an_evaluation_that_cannot_resume_is_one_toast_saying_why(evaluation, tmp_path):
    tab, fresh, root = evaluation
    unreadable = tab.store.create("evaluate", {}, {"schema": "evaluate/2"}, status="failed")
    assert tab.latest() == unreadable.id and unreadable.id not in [row[0] for row in tab.run_rows()]
    assert toast(tab.resume, "") == "Run an evaluation or pick one in the table first."
    assert toast(tab.resume, fresh.id).endswith("is already completed: press Run for a new evaluation.")

    other = interrupted(tab, {**fresh.inputs, "suite": "tiny"})
    assert toast(tab.resume, other.id) == (f"Run {other.id} was recorded with the tiny suite and this app runs the "
                                           "offline suite: start the app with --suite tiny to resume it.")
    cli = interrupted(tab, {k: v for k, v in fresh.inputs.items() if k != "source"})
    assert "was not started in this tab" in toast(tab.resume, cli.id)

    gone = photo_folder(root / "gone", ["text"])
    run = interrupted(tab, {**fresh.inputs, "sets": {**fresh.inputs["sets"], "docs": str(gone)}})
    shutil.rmtree(gone)
    assert toast(tab.resume, run.id) == f"Run {run.id} cannot resume: {gone}: no such folder"

    layout = openood_layout(root / "openood")
    id_set, _, folders, context = tab.benchmark_sets("openood-v1.5", str(layout))
    context.pop("groups")
    record = EvaluateRecord(folders, id_set, ["mcm"], ["mos"], {"suite": "offline", "checkpoint": None,
                                                                "source": "benchmark", **context})
    run = interrupted(tab, record.inputs())
    imglist = layout / "benchmark_imglist" / "imagenet" / "test_ninco.txt"
    imglist.write_text(imglist.read_text().splitlines()[0] + "\n")  # a set lost one of its two images
    assert toast(tab.resume, run.id) == (f"Run {run.id} cannot resume: the openood-v1.5 file lists under {layout} "
                                         "changed since it started; press Run for a new evaluation.")

    gate = threading.Event()  # the runner busy: a resumed run waits in its queue
    busy = tab.store.create("evaluate", {}, {}, status="queued")
    tab.runner.submit(busy.id, lambda stop: gate.wait(60))
    try:
        run = interrupted(tab, fresh.inputs, fresh.config)
        tab.resume(run.id)
        assert toast(tab.resume, run.id) == (f"Run {run.id} is already queued or running in this app: wait until it "
                                             "has finished or stopped.")
    finally:
        gate.set()
    assert finished(tab, run.id).status == "completed"


def test_the_evaluation_galleries_show_thumbnails_made_once_per_image(suite, tmp_path):
    photo_folder(tmp_path / "id", [p.name for p in photos.photos("id")[:3]])
    photo_folder(tmp_path / "textures", ["brick", "grass"])
    tab = evaluation_tab(suite, tmp_path / "home", tmp_path)
    run = evaluated(tab, tmp_path)
    gallery, items = tab.hardest(run.id, "msp", "", 2)
    assert [caption.split(" · ")[0] for _, caption in gallery] == ["textures (OOD)"] * 2 + ["ID"] * 2
    assert all(" · score " in caption and " · negative: " in caption for _, caption in gallery)
    assert [item.caption for item in items] == [caption for _, caption in gallery]
    thumbs = [Path(image) for image, _ in gallery]
    assert all(thumb.is_relative_to(thumbnail_dir()) and thumb.suffix == ".jpg" for thumb in thumbs)
    assert all(Path(item.path).is_relative_to(tmp_path) for item in items)
    made = [thumb.stat().st_mtime_ns for thumb in thumbs]
    again, _ = tab.hardest(run.id, "msp", "", 2)
    assert [Path(image) for image, _ in again] == thumbs and [t.stat().st_mtime_ns for t in thumbs] == made

    Path(items[0].path).write_bytes(b"no longer a picture")  # unreadable now: a placeholder, not clickable
    elsewhere = evaluation_tab(suite, tmp_path / "home", tmp_path / "home")  # the images outside its data roots
    for handlers, shown in ((tab, 1), (elsewhere, 0)):
        gallery, items = handlers.hardest(run.id, "msp", "", 2)
        assert [isinstance(image, str) for image, _ in gallery] == [False] + [bool(shown)] * 3
        assert [bool(item.path) for item in items] == [False] + [bool(shown)] * 3
