"""synood.pipelines.evaluation: only the passes the scorers need, cached (a second evaluation runs no model), the
JSON shape of `synood evaluate --json`, evaluate run records old and new, and a toy scorer added by the registry only."""
import json
import os
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from synood.cli import main
from synood.config import Config, NegLabelConfig
from synood.data import photos
from synood.method import scores
from synood.method.metrics import CONVENTIONS, evaluate as metrics_of
from synood.method.scorers import SCORERS, ScoreInputs, Scorer, build, standard
from synood.models.interfaces import ComponentInfo
from synood.pipelines import evaluation, training
from synood.records.checkpoint import TunedDetector
from synood.records.runs import EvaluateRecord, RunStore

CONFIG = NegLabelConfig(ngroups=4)


class CountingEncoder:
    """A fixed linear map of each image's 2x2 thumbnail, counting the images it encodes."""

    embed_dim = 8

    def __init__(self):
        self.identity, self.encoded = f"counting-encoder-{uuid.uuid4().hex}", 0
        self.weight = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))

    def preprocess(self, images):
        return torch.stack([torch.tensor(np.asarray(im.convert("RGB").resize((2, 2)), dtype=np.float32)).flatten() / 255
                            for im in images])

    def encode_image(self, pixels, normalize=True):
        self.encoded += len(pixels)
        out = pixels @ self.weight + 0.1
        return F.normalize(out, dim=-1) if normalize else out


class CountingClassifier:
    """Five-class logits from an image's mean colour, counting the images it classifies (`passes`)."""

    class_names = [f"class {i}" for i in range(5)]
    dtype = torch.float32

    def __init__(self):
        self.info = ComponentInfo("classifier", f"counting-{uuid.uuid4().hex}", "toy", "in-process", False, 0)
        self.passes = 0

    @staticmethod
    def to_tensor(image):
        return torch.tensor(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)

    def logits(self, images):
        self.passes += len(images)
        mean = images.mean(dim=(2, 3)) / 255
        return torch.cat([mean, mean.sum(dim=1, keepdim=True), -mean[:, :1]], dim=1) * 4


@pytest.fixture
def sets(tmp_path):
    """An ID set of reddish images and an OOD set of bluish ones (one file there is not an image)."""
    g = torch.Generator().manual_seed(1)
    found = {}
    for name, base in (("ID", (200, 60, 60)), ("textures", (60, 60, 200))):
        (tmp_path / name).mkdir()
        for i in range(6):
            noise = torch.randint(-50, 50, (3,), generator=g).tolist()
            Image.new("RGB", (8, 6), tuple(b + n for b, n in zip(base, noise))).save(tmp_path / name / f"{i}.png")
        found[name] = evaluation.folder_images(name, tmp_path / name)
    (tmp_path / "textures" / "broken.png").write_bytes(b"not a png")
    found["textures"] = evaluation.folder_images("textures", tmp_path / "textures")
    return found


def texts() -> ScoreInputs:
    g = torch.Generator().manual_seed(2)
    return ScoreInputs(F.normalize(torch.randn(5, 8, generator=g), dim=-1),
                       F.normalize(torch.randn(20, 8, generator=g), dim=-1), CONFIG)


def test_a_second_evaluation_encodes_nothing_and_runs_no_classifier(sets):
    encoder, classifier = CountingEncoder(), CountingClassifier()
    scorers = {name: build(name) for name in standard()}
    first = evaluation.evaluate(sets, scorers, encoder, classifier, texts(), list(CONVENTIONS))
    assert encoder.encoded == 12 and classifier.passes == 12  # the broken file is skipped, once
    second = evaluation.evaluate(sets, scorers, encoder, classifier, texts(), list(CONVENTIONS))
    assert encoder.encoded == 12 and classifier.passes == 12
    assert second.to_dict() == first.to_dict()
    for name in standard():
        assert torch.equal(second.sets["ID"].scores[name], first.sets["ID"].scores[name])


def test_only_the_passes_the_scorers_need_run(sets):
    encoder, classifier = CountingEncoder(), CountingClassifier()
    evaluation.evaluate(sets, {"mcm": build("mcm")}, encoder, classifier, texts())
    assert (encoder.encoded, classifier.passes) == (12, 0)
    evaluation.evaluate(sets, {"energy": build("energy")}, CountingEncoder(), classifier, texts())
    assert classifier.passes == 12


def test_scores_and_metrics_are_the_formulas_on_the_cached_features(sets):
    encoder, classifier = CountingEncoder(), CountingClassifier()
    result = evaluation.evaluate(sets, {"neglabel": build("neglabel"), "msp": build("msp")}, encoder, classifier,
                                 texts(), ["mos", "openood"], folders={"ID": "id-folder"})
    t = texts()
    raw = {name: encoder.encode_image(encoder.preprocess([Image.open(p) for p in result.sets[name].paths]),
                                      normalize=False) for name in ("ID", "textures")}
    expected = {name: scores.neglabel_score(F.normalize(f, dim=-1).double(), t.id_text.double(),
                                            t.negative_text.double(), 4)[0] for name, f in raw.items()}
    torch.testing.assert_close(result.sets["textures"].scores["neglabel"], expected["textures"])
    m = metrics_of(expected["ID"], expected["textures"], "openood").as_percent()
    entry = result.to_dict()["methods"]["neglabel"]["sets"]["textures"]["openood"]
    assert entry == {"convention": "openood", **{k: pytest.approx(m[k]) for k in evaluation.METRIC_KEYS},
                     "id_count": 6, "ood_count": 6}
    report = result.to_dict()
    assert list(report) == ["suite", "unit", "conventions", "id", "ood", "methods"]
    assert report["id"] == {"folder": "id-folder", "count": 6, "skipped": 0}
    assert report["ood"] == {"textures": {"folder": "", "count": 6, "skipped": 1}}
    assert result.skipped[0].startswith(str(sets["textures"][0].parent / "broken.png"))
    assert list(report["methods"]["msp"]["average"]["mos"]) == ["convention", *evaluation.METRIC_KEYS]


def test_a_set_with_no_readable_image_is_one_message(sets, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"nope")
    bad = {"ID": sets["ID"], "bad": [tmp_path / "bad" / "x.jpg"]}
    with pytest.raises(evaluation.EvaluationError, match="bad: none of its 1 image files could be read"):
        evaluation.evaluate(bad, {"mcm": build("mcm")}, CountingEncoder(), None, texts())
    (tmp_path / "empty").mkdir()
    with pytest.raises(evaluation.EvaluationError, match="empty folder .*: no image files"):
        evaluation.folder_images("empty", tmp_path / "empty")


def test_before_after_is_the_engine_with_every_standard_score_and_the_tuned_scorer(sets, tmp_path):
    encoder, classifier, t = CountingEncoder(), CountingClassifier(), texts()
    tuned = TunedDetector(None, torch.tensor([1, 2]), torch.randn(2, 8))
    folders = {name: str(paths[0].parent) for name, paths in sets.items()}
    config = Config()
    config.neglabel.ngroups = 4
    id_folder, ood_folder = folders["ID"], folders["textures"]
    result = training.before_after(encoder, classifier, t.id_text, t.negative_text, tuned, id_folder, ood_folder,
                                   config)
    assert list(result.methods) == [*standard(), "synood"] and result.conventions == ["mos", "openood"]
    assert result.sets["OOD"].folder == ood_folder and result.sets["OOD"].count == 6
    direct = build("synood", tuned).score(evaluation.set_inputs("ID", sets["ID"], {"features"}, encoder, None, t)[2])
    torch.testing.assert_close(result.sets["ID"].scores["synood"], direct)
    encoded, passes = encoder.encoded, classifier.passes
    training.before_after(encoder, classifier, t.id_text, t.negative_text, tuned, id_folder, ood_folder, config)
    assert (encoder.encoded, classifier.passes) == (encoded, passes)  # the caches: no model runs again
    without = training.before_after(encoder, None, t.id_text, t.negative_text, tuned, id_folder, ood_folder, config)
    assert list(without.methods) == ["neglabel", "mcm", "synood"]  # no classifier: no score that reads its logits
    with pytest.raises(training.TrainingError, match="no such folder"):
        training.before_after(encoder, None, t.id_text, t.negative_text, tuned, tmp_path / "missing", id_folder,
                              config)


def test_old_evaluate_rows_read_back_beside_new_ones(tmp_path, sets):
    store = RunStore(tmp_path / "runs.sqlite")
    metrics = {"auroc": 90.0, "aupr_in": 80.0, "aupr_out": 70.0, "fpr95": 40.0}
    # `synood evaluate` before the one schema: summary = method -> average (convention -> metrics)
    cli = store.create("evaluate", {}, {"id": "/id", "ood": {"textures": "/tex"}, "suite": "offline",
                                        "methods": ["neglabel"], "conventions": ["mos"], "checkpoint": None})
    store.update(cli.id, status="completed", summary={"neglabel": {"mos": {"convention": "mos", **metrics}}})
    # the Fine-tuning tab's before/after: folders in the inputs, counts and "methods" in the summary
    tab = store.create("evaluate", {}, {"finetune_run": "r1", "detector": "/d.safetensors", "id_folder": "/id",
                                        "ood_folder": "/ood"})
    store.update(tab.id, status="completed", summary={
        "methods": {m: {c: metrics for c in ("mos", "openood")} for m in ("neglabel", "synood")},
        "id": 12, "ood": 3, "skipped": 1})
    result = evaluation.evaluate(sets, {"mcm": build("mcm")}, CountingEncoder(), None, texts(),
                                 folders={"ID": "/id", "textures": "/tex"})
    new = evaluation.record(RunStore(tmp_path / "runs.sqlite"), {"models": {}}, result, {"suite": "test"})

    assert {run.id for run in RunStore(tmp_path / "runs.sqlite").list(kind="evaluate")} == {cli.id, tab.id, new.id}
    old = EvaluateRecord.of(store.get(cli.id))
    assert (old.sets, old.id_set, old.methods, old.conventions) == ({"ID": "/id", "textures": "/tex"}, "ID",
                                                                   ["neglabel"], ["mos"])
    assert old.averages["neglabel"]["mos"]["auroc"] == 90.0 and old.context["suite"] == "offline"
    before_after = EvaluateRecord.of(store.get(tab.id))
    assert before_after.sets == {"ID": "/id", "OOD": "/ood"} and before_after.methods == ["neglabel", "synood"]
    assert before_after.conventions == ["mos", "openood"] and before_after.counts == {"ID": 12, "OOD": 3}
    assert before_after.averages["synood"]["openood"]["fpr95"] == 40.0 and before_after.skipped == 1
    assert before_after.context == {"finetune_run": "r1", "detector": "/d.safetensors"}
    record = EvaluateRecord.of(new)
    assert record == result.record({"suite": "test"})
    assert record.counts == {"ID": 6, "textures": 6} and record.skipped == 1
    assert record.averages["mcm"]["mos"] == {k: getattr(result.methods["mcm"].average["mos"], k)
                                             for k in evaluation.METRIC_KEYS}
    assert json.loads(json.dumps(new.summary))["methods"]["mcm"]["mos"]["auroc"] == record.averages["mcm"]["mos"]["auroc"]


class MaxLogit(Scorer):
    """A toy score, registered by the registry alone: the largest classifier logit."""

    name, title, kind, needs = "maxlogit", "MaxLogit", "post-hoc", frozenset({"logits"})

    def score(self, inputs):
        return inputs.need("logits").max(dim=-1).values


def test_a_scorer_added_to_the_registry_appears_in_synood_evaluate(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(SCORERS, MaxLogit.name, MaxLogit)
    for name, chosen in (("id", photos.photos("id")[:4]), ("ood", [photos.by_name(n) for n in ("brick", "grass")])):
        (tmp_path / name).mkdir()
        for photo in chosen:
            os.symlink(photo.path, tmp_path / name / f"{photo.name}{photo.path.suffix}")
    args = ["evaluate", "--suite", "tiny", "--id", str(tmp_path / "id"), "--ood", f"textures={tmp_path / 'ood'}"]
    assert main([*args, "--scores", "neglabel,maxlogit"]) == 0
    table = capsys.readouterr().out
    assert [line.split()[0] for line in table.splitlines() if line.startswith(("NegLabel", "MaxLogit"))] == [
        "NegLabel", "MaxLogit"]
    assert main([*args, "--json"]) == 0  # by default with every score that needs no detector file
    report = json.loads(capsys.readouterr().out)
    assert list(report["methods"]) == ["neglabel", "mcm", "msp", "energy", "maxlogit"]
    assert 0 <= report["methods"]["maxlogit"]["average"]["mos"]["auroc"] <= 100
    assert main([*args, "--scores", "bogus"]) == 2
    assert "choose from neglabel,mcm,msp,energy,maxlogit,csp (synood needs --checkpoint)" in capsys.readouterr().err


class MeanFeature(Scorer):
    """A toy score of image features alone, registered by the registry alone: the mean raw feature."""

    name, title, kind, needs = "meanfeature", "Mean feature", "post-hoc", frozenset({"features"})

    def score(self, inputs):
        return inputs.need("features").mean(dim=-1)


def test_a_scorer_added_to_the_registry_appears_in_the_before_after_and_the_map_colours(monkeypatch, sets):
    from ui.featuremap_tab import colour_choices
    from ui.finetune_tab import metrics_rows

    monkeypatch.setitem(SCORERS, MaxLogit.name, MaxLogit)
    monkeypatch.setitem(SCORERS, MeanFeature.name, MeanFeature)
    tuned = TunedDetector(None, torch.tensor([1, 2]), torch.randn(2, 8))
    t, config = texts(), Config()
    config.neglabel.ngroups = 4
    folders = [str(sets[name][0].parent) for name in ("ID", "textures")]
    result = training.before_after(CountingEncoder(), CountingClassifier(), t.id_text, t.negative_text, tuned,
                                   *folders, config)
    assert list(result.methods) == ["neglabel", "mcm", "msp", "energy", "maxlogit", "meanfeature", "synood"]
    assert ["Mean feature (before)", "MOS (paper)"] in [row[:2] for row in metrics_rows(result)]
    assert ("Mean feature", "meanfeature") in colour_choices()  # the map computes image features only:
    assert "maxlogit" not in dict(colour_choices()).values()  # a score of classifier logits is not offered


class NearestOwnNegative(Scorer):
    """A toy score reading a pool of its own: the image's highest cosine to that pool's ID labels minus the highest to
    its negatives."""

    name, title, kind, needs, pool = "ownpool", "Own pool", "post-hoc", frozenset({"features"}), "toy"

    def score(self, inputs):
        return (inputs.unit @ inputs.id_text.T).max(dim=-1).values - (inputs.unit @ inputs.negative_text.T).max(
            dim=-1).values


def test_a_scorer_reading_its_own_pool_gets_that_pool_and_only_when_asked(monkeypatch, sets, tmp_path, capsys):
    from synood.method.scorers import Texts, choices
    from synood.pipelines import mining

    monkeypatch.setitem(SCORERS, NearestOwnNegative.name, NearestOwnNegative)
    assert "ownpool" not in standard() and choices()[-1] == "ownpool"  # never mined unless asked for
    g = torch.Generator().manual_seed(5)
    toy = Texts(F.normalize(torch.randn(3, 8, generator=g), dim=-1), F.normalize(torch.randn(7, 8, generator=g), dim=-1))
    encoder, scorers = CountingEncoder(), {"ownpool": NearestOwnNegative(), "neglabel": build("neglabel")}
    with pytest.raises(ValueError, match="needs the negative-label pools toy"):
        evaluation.evaluate(sets, scorers, encoder, None, texts())
    result = evaluation.evaluate(sets, scorers, encoder, None, texts(), pools={"toy": toy})
    unit = F.normalize(evaluation.set_inputs("ID", sets["ID"], {"features"}, encoder, None, texts())[2].features, dim=-1)
    torch.testing.assert_close(result.sets["ID"].scores["ownpool"], (unit @ toy.id_text.T).max(dim=-1).values
                               - (unit @ toy.negative_text.T).max(dim=-1).values)
    plain = evaluation.evaluate(sets, {"neglabel": build("neglabel")}, encoder, None, texts())
    torch.testing.assert_close(result.sets["ID"].scores["neglabel"], plain.sets["ID"].scores["neglabel"])

    mined = []

    def mine_toy(identity, text_features, id_names, config, progress=None, **kwargs):
        mined.append(identity)
        return [], torch.randn(7, text_features(["a"]).shape[-1], generator=torch.Generator().manual_seed(5))

    monkeypatch.setitem(mining.POOLS, "toy", mining.Pool(mining.id_label_features, mine_toy))
    (tmp_path / "id").mkdir()
    for photo in photos.photos("id")[:3]:
        os.symlink(photo.path, tmp_path / "id" / f"{photo.name}{photo.path.suffix}")
    args = ["evaluate", "--suite", "tiny", "--id", str(tmp_path / "id"), "--ood", f"t={sets['textures'][0].parent}",
            "--json"]
    assert main(args) == 0 and "ownpool" not in json.loads(capsys.readouterr().out)["methods"] and not mined
    assert main([*args, "--scores", "ownpool,mcm"]) == 0 and len(mined) == 1
    assert list(json.loads(capsys.readouterr().out)["methods"]) == ["ownpool", "mcm"]


def test_execute_saves_the_evaluation_and_stops_when_asked(sets, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    scorers = {"neglabel": build("neglabel"), "mcm": build("mcm")}

    def work(progress):
        return evaluation.evaluate(sets, scorers, CountingEncoder(), None, texts(), progress=progress)

    heard = []
    run = store.create("evaluate", {}, {})
    result = evaluation.execute(store, run.id, tmp_path, work, progress=lambda *step: heard.append(step))
    done = store.get(run.id)
    assert done.status == "completed" and done.message == "" and result.run == run.id
    assert evaluation.reopen(done.artifacts["evaluation"]).report == result.to_dict()
    assert heard[-1] == ("features of textures", 7, 7)  # the broken file counts as done too
    stopped = store.create("evaluate", {}, {})
    assert evaluation.execute(store, stopped.id, tmp_path, work, stop=lambda: True) is None
    assert store.get(stopped.id).status == "stopped"
    assert store.get(stopped.id).message.startswith("stopped by the user during features of ID")
    failing = store.create("evaluate", {}, {})
    with pytest.raises(evaluation.EvaluationError):
        evaluation.execute(store, failing.id, tmp_path, lambda progress: evaluation.evaluate(
            {"ID": sets["ID"], "bad": [tmp_path / "runs.sqlite"]}, scorers, CountingEncoder(), None, texts()))
    assert store.get(failing.id).status == "failed" and "bad: none of its 1 image files" in store.get(failing.id).message


def test_autocast_runs_the_models_in_mixed_precision_and_caches_apart(sets):
    encoder, classifier = CountingEncoder(), CountingClassifier()
    encoder.device = classifier.device = torch.device("cpu")
    scorers = {"mcm": build("mcm"), "msp": build("msp")}
    plain = evaluation.evaluate(sets, scorers, encoder, classifier, texts())
    mixed = evaluation.evaluate(sets, scorers, encoder, classifier, texts(), autocast=True)
    assert (encoder.encoded, classifier.passes) == (24, 24)  # its own cache: every image ran again
    evaluation.evaluate(sets, scorers, encoder, classifier, texts(), autocast=True)
    assert (encoder.encoded, classifier.passes) == (24, 24)
    a, b = plain.sets["ID"].scores["mcm"], mixed.sets["ID"].scores["mcm"]
    assert not torch.equal(a, b) and torch.allclose(a, b, rtol=0.05)  # bfloat16 on CPU: close, not equal
