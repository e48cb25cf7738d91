"""The Negative labels inspector shows every registered score of an image: the standard ones always, a score with its
own pool and the tuned SynOOD score once an evaluation ran them (each against that evaluation's 95 %-ID threshold),
and for each score it cannot show, why."""
from __future__ import annotations

import pytest
import torch

from synood.config import Config
from synood.data import photos
from synood.data.images import load_image
from synood.method import scorers
from synood.method.finetune import Projection
from synood.method.metrics import id_threshold
from synood.models import Suite
from synood.pipelines import evaluation
from synood.records import checkpoint
from synood.records.runs import RunStore
from ui.detector import DetectorHolder
from ui.neglabel_tab import NegLabelTab


@pytest.fixture(scope="module")
def holder() -> DetectorHolder:
    config = Config()
    config.models.suite, config.models.device = "offline", "cpu"
    return DetectorHolder.shared(Suite.from_config(config.models), config)


def tuned_file(detector, path):
    """A fine-tuned detector file for this detector's encoder and negatives (a seeded projection, two tuned rows)."""
    torch.manual_seed(0)
    meta = {"encoder": detector.encoder.identity,
            "negatives_digest": checkpoint.negatives_digest([label.word for label in detector.negatives])}
    tuned = checkpoint.TunedDetector(Projection(detector.id_features.shape[1]).eval(), torch.arange(2),
                                     detector.negative_features[:2].flip(0).clone(), meta)
    checkpoint.save_detector(path, tuned)
    return tuned


def test_every_registered_score_is_shown_or_said_why_not(holder, tmp_path, monkeypatch):
    detector = holder.get(lambda *args, **kwargs: None)
    coffee = str(photos.by_name("coffee").path)
    tab = NegLabelTab(holder, holder.config.neglabel, RunStore(tmp_path / "runs.db"))
    monkeypatch.setattr(detector, "pools", dict(detector.pools))  # the CSP pool made below leaves with the test

    analysis, card, *_ = tab.analyse(coffee, 100, 0.01)  # no evaluation yet, no CSP pool mined
    assert set(analysis.scores) == set(scorers.standard())
    assert "Not shown: CSP: mines its own pool on first use" in card
    assert "SynOOD: needs a fine-tuned detector" in card

    # An evaluation of NegLabel, CSP (its pool: every other negative, as if mined) and SynOOD (a detector file).
    csp_pool = scorers.Texts(detector.id_features, detector.negative_features[::2].contiguous())
    tuned = tuned_file(detector, tmp_path / "tuned.safetensors")
    chosen = {"neglabel": scorers.build("neglabel"), "csp": scorers.build("csp"),
              "synood": scorers.build("synood", tuned, "both")}
    sets = {"ID": [p.path for p in photos.photos("id")], "OOD": [p.path for p in photos.photos("ood")]}
    result = evaluation.evaluate(sets, chosen, detector.encoder, detector.classifier, detector.inputs(),
                                 pools={"csp": csp_pool})
    result.checkpoint = {"run": "", "combination": "both"}
    run = evaluation.record(tab.store, {}, result, {"suite": holder.suite.name,
                                                    "checkpoint": str(tmp_path / "tuned.safetensors")}, tmp_path)
    monkeypatch.setitem(detector.pools, "csp", csp_pool)  # what its evaluation mined (cached on disk)

    analysis, card, *_ = tab.analyse(coffee, 100, 0.01)
    assert set(analysis.scores) == {*scorers.standard(), "csp", "synood"} and "Not shown" not in card
    raw = detector.score([load_image(coffee)])["raw"]
    inputs = scorers.ScoreInputs(csp_pool.id_text, csp_pool.negative_text, detector.config, raw)
    assert analysis.scores["csp"] == pytest.approx(float(scorers.build("csp").score(inputs)[0]), abs=1e-9)
    synood = scorers.build("synood", tuned, "both").score(detector.inputs(raw))
    assert analysis.scores["synood"] == pytest.approx(float(synood[0]), abs=1e-6)
    ids = result.sets["ID"].scores
    for name in ("csp", "synood"):
        threshold = id_threshold(ids[name].double().numpy(), 0.95, "mos")
        side = "ID" if analysis.scores[name] >= threshold else "OOD"
        assert f"{scorers.SCORERS[name].title} {analysis.scores[name]:.4g}" in card
        assert f"{threshold:.4g} ({side})" in card, name
    assert f"evaluation run {run.id}" in card

    (tmp_path / "tuned.safetensors").unlink()  # the evaluation's detector file gone: said, the rest still shown
    analysis, card, *_ = tab.analyse(coffee, 100, 0.01)
    assert "synood" not in analysis.scores and "csp" in analysis.scores
    assert f"SynOOD: the detector of evaluation run {run.id} cannot be used" in card and "no such detector" in card

