"""The app's tab handlers called directly, without a server or a browser: what they return for good input, one toast
(gr.Error, no traceback) for bad input, and every registered standard score on the Negative labels card."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
import torch

from synood.config import Config
from synood.data import photos
from synood.method import scorers
from synood.models import Suite
from ui.access import DataRoots
from ui.context_tab import ContextTab
from ui.detector import DetectorHolder
from ui.featuremap_tab import FeatureMapTab
from ui.finetune_tab import FinetuneTab
from ui.models_tab import ModelsTab
from ui.neglabel_tab import NegLabelTab
from ui.noise_tab import NoiseTab
from ui.pairs_tab import PairsTab


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
