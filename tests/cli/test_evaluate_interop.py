"""`synood evaluate --bootstrap` and `--export-scores`, and `synood metrics --scores` on an exported folder and on a
hand-made OpenOOD one. In process on the tiny suite (random weights: only the structure and the agreement between
the commands mean something); its mined negatives come from the test cache like every tiny-suite test's."""
import csv
import json
import math

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from tests.helpers.cli import in_process as run, photo_sets
from synood.data import photos
from tests.helpers.caches import model_caches
from tests.helpers.reports import flat

SETS = {"textures": ("brick", "grass", "gravel"), "docs": ("page", "text", "notes")}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """evaluate on an ID folder and two OOD folders: the plain table, --json --convention all with
    --export-scores, and the same with --bootstrap 200 --seed 3 (JSON, table and CSV)."""
    root = tmp_path_factory.mktemp("interop")
    photo_sets(root, SETS)
    args = ["evaluate", "--suite", "tiny", "--id", str(root / "id"),
            *(a for n in SETS for a in ("--ood", f"{n}={root / n}"))]
    boot = ["--bootstrap", "200", "--seed", "3"]
    found = {"root": root, "args": args,
             "table": run(*args), "plain": run(*args, "--json", "--convention", "all", "--export-scores",
                                               str(root / "exported")),
             "boot": run(*args, *boot, "--json", "--convention", "all"),
             "boot_table": run(*args, *boot, "--csv", str(root / "boot.csv"))}
    assert all(found[k][0] == 0 for k in ("table", "plain", "boot", "boot_table")), found["plain"][2][-2000:]
    return found


def _without(report, *keys):
    """`report` without `keys` at the top and without every "ci95" below."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "ci95"}
        return value
    return strip({k: v for k, v in report.items() if k not in keys})


def test_bootstrap_adds_an_interval_to_every_metric_and_changes_nothing_else(evaluated):
    plain, boot = json.loads(evaluated["plain"][1]), json.loads(evaluated["boot"][1])
    assert "ci95" not in evaluated["plain"][1] and "bootstrap" not in plain  # without --bootstrap: as before
    assert boot["bootstrap"] == {"resamples": 200, "seed": 3}
    assert _without(boot, "run", "bootstrap") == _without(plain, "run")
    for method in boot["methods"].values():
        for entries in [*method["sets"].values(), method["average"]]:
            for entry in entries.values():
                assert list(entry["ci95"]) == ["auroc", "fpr95", "aupr_in", "aupr_out"]
                assert all(0 <= lo <= hi <= 100 for lo, hi in entry["ci95"].values())


def test_the_same_seed_gives_the_same_intervals(evaluated):
    code, out, _ = run(*evaluated["args"], "--bootstrap", "200", "--seed", "3", "--json", "--convention", "all")
    assert code == 0 and json.loads(out)["methods"] == json.loads(evaluated["boot"][1])["methods"]


def test_the_bootstrap_table_prints_plus_minus_half_widths_and_the_csv_the_bounds(evaluated):
    table = evaluated["boot_table"][1]
    boot = json.loads(evaluated["boot"][1])["methods"]["neglabel"]
    row = next(line for line in table.splitlines() if line.startswith("NegLabel"))
    cells = [*(s["mos"] for s in boot["sets"].values()), boot["average"]["mos"]]
    expected = [f"{c[k]:.2f}±{(c['ci95'][k][1] - c['ci95'][k][0]) / 2:.2f}" for c in cells for k in ("auroc", "fpr95")]
    assert row.split()[1:] == expected
    assert "half the width of its 95 % percentile bootstrap interval (200 resamples" in table and "seed 3" in table
    with open(evaluated["root"] / "boot.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * len(SETS) and "auroc_ci95_lo" in rows[0] and "aupr_out_ci95_hi" in rows[0]
    first = boot["sets"]["textures"]["mos"]
    assert [float(rows[0]["fpr95_ci95_lo"]), float(rows[0]["fpr95_ci95_hi"])] == first["ci95"]["fpr95"]
    assert "±" not in evaluated["table"][1] and "bootstrap" not in evaluated["table"][1]


def test_bad_bootstrap_is_one_message(evaluated):
    code, _, err = run(*evaluated["args"], "--bootstrap", "-5")
    assert code == 2 and "--bootstrap -5: give a number of resamples" in err


def test_exported_scores_are_openood_files_and_a_csv(evaluated):
    folder, plain = evaluated["root"] / "exported", json.loads(evaluated["plain"][1])
    assert sorted(p.name for p in folder.iterdir()) == sorted([*plain["methods"], "scores.csv"])
    with open(folder / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["set", "path", *plain["methods"]]
    assert [r["set"] for r in rows] == ["ID"] * 6 + ["textures"] * 3 + ["docs"] * 3
    for name in ("ID", *SETS):
        with np.load(folder / "neglabel" / "scores" / f"{name}.npz") as data:
            assert sorted(data.files) == ["conf", "label", "pred"]
            assert (data["label"] == (0 if name == "ID" else -1)).all() and (data["pred"] == -1).all()
            assert data["conf"].tolist() == [float(r["neglabel"]) for r in rows if r["set"] == name]


def test_every_evaluation_is_saved_in_its_run_folder_and_reopens(evaluated):
    from synood.pipelines.evaluation import reopen

    plain = json.loads(evaluated["plain"][1])
    code, out, _ = run("runs", "--json", plain["run"])
    saved = reopen(json.loads(out)["artifacts"]["evaluation"])
    assert code == 0 and saved.report == plain
    assert list(saved.sets) == ["ID", *SETS] and [p.name for p in saved.sets["docs"].paths] == [
        f"{name}{photos.by_name(name).path.suffix}" for name in sorted(SETS["docs"])]
    with np.load(evaluated["root"] / "exported" / "mcm" / "scores" / "docs.npz") as data:
        assert saved.sets["docs"].scores["mcm"].tolist() == data["conf"].tolist()


def test_metrics_on_the_exported_scores_reproduce_evaluate(evaluated):
    folder, plain = str(evaluated["root"] / "exported"), json.loads(evaluated["plain"][1])
    code, out, _ = run("metrics", "--scores", folder, "--json", "--convention", "all")
    assert code == 0 and json.loads(out)["methods"] == plain["methods"]
    assert {n: s["count"] for n, s in json.loads(out)["ood"].items()} == {n: 3 for n in SETS}
    code, table, _ = run("metrics", "--scores", folder)
    assert code == 0 and table.splitlines()[1:] == evaluated["table"][1].splitlines()[1:]
    code, out, _ = run("metrics", "--scores", folder, "--json", "--convention", "all", "--bootstrap", "200",
                       "--seed", "3")
    assert code == 0 and json.loads(out)["methods"] == json.loads(evaluated["boot"][1])["methods"]


@pytest.fixture
def openood_run(tmp_path):
    """An OpenOOD output folder as its evaluator leaves it: scores/<dataset>.npz with pred, conf and label (the ID
    set's class labels, -1 for every OOD image)."""
    scores = tmp_path / "run" / "scores"
    scores.mkdir(parents=True)
    sets = {"imagenet": ([0.9, 0.8, 0.7, 0.6, 0.5], [3, 7, 1, 0, 2]), "inaturalist": ([0.65, 0.3, 0.2, 0.1], None),
            "textures": ([0.95, 0.05, 0.04], None)}
    for name, (conf, label) in sets.items():
        label = np.array(label if label is not None else [-1] * len(conf))
        np.savez(scores / name, pred=np.zeros(len(conf), dtype=int), conf=np.array(conf, np.float32), label=label)
    return tmp_path / "run", {name: np.array(conf, np.float32) for name, (conf, _) in sets.items()}


def _openood_metrics(id_conf, ood_conf):
    """(fpr, auroc, aupr_in, aupr_out) by OpenOOD's own lines (openood/evaluators/metrics.py)."""
    conf = np.concatenate([id_conf, ood_conf])
    ood_indicator = np.concatenate([np.zeros(len(id_conf)), np.ones(len(ood_conf))])
    fpr_list, tpr_list, _ = skm.roc_curve(ood_indicator, -conf)
    precision_in, recall_in, _ = skm.precision_recall_curve(1 - ood_indicator, conf)
    precision_out, recall_out, _ = skm.precision_recall_curve(ood_indicator, -conf)
    return (fpr_list[np.argmax(tpr_list >= 0.95)], skm.auc(fpr_list, tpr_list), skm.auc(recall_in, precision_in),
            skm.auc(recall_out, precision_out))


def test_metrics_of_a_hand_made_openood_folder(openood_run):
    folder, conf = openood_run
    code, out, _ = run("metrics", "--scores", str(folder), "--json", "--convention", "all")
    assert code == 0
    report = json.loads(out)
    assert report["id"]["count"] == 5 and list(report["ood"]) == ["inaturalist", "textures"]
    (method,) = report["methods"].values()
    inat, textures = method["sets"]["inaturalist"], method["sets"]["textures"]
    # By hand (MOS): AUROC = ID-over-OOD pairs / all pairs; FPR95 = OOD at or above the lowest ID score (0.5).
    assert inat["mos"]["auroc"] == pytest.approx(100 * 18 / 20) and inat["mos"]["fpr95"] == pytest.approx(25.0)
    assert textures["mos"]["auroc"] == pytest.approx(100 * 10 / 15) and textures["mos"]["fpr95"] == pytest.approx(
        100 / 3)
    assert inat["mos"]["aupr_in"] == pytest.approx(100 * (1 + 1 + 1 + 4 / 5 + 5 / 6) / 5)
    assert method["average"]["mos"]["auroc"] == pytest.approx((90 + 200 / 3) / 2)
    # OpenOOD's convention equals OpenOOD's own computation on the same files.
    for name in ("inaturalist", "textures"):
        fpr, auroc, aupr_in, aupr_out = _openood_metrics(conf["imagenet"], conf[name])
        entry = method["sets"][name]["openood"]
        assert [entry[k] for k in ("fpr95", "auroc", "aupr_in", "aupr_out")] == pytest.approx(
            [100 * fpr, 100 * auroc, 100 * aupr_in, 100 * aupr_out])
    assert inat["openood"]["fpr95"] == pytest.approx(40.0)  # ID at or below 0.65, where 95 % of OOD is caught
    code, out, _ = run("metrics", "--scores", str(folder / "scores"), "--json")  # its scores/ folder reads the same
    assert code == 0 and json.loads(out)["methods"]["run"]["sets"]["textures"]["mos"] == textures["mos"]
    assert math.isclose(json.loads(out)["methods"]["run"]["average"]["mos"]["fpr95"], (25 + 100 / 3) / 2)


@pytest.mark.parametrize("change, words", [
    (lambda s: np.savez(s / "places", conf=np.ones(2), label=np.array([0, 1])), "2 ID score files"),
    (lambda s: np.savez(s / "mixed", conf=np.ones(2), label=np.array([-1, 4])), "mixes 1 OOD labels"),
    (lambda s: (s / "broken.npz").write_bytes(b"not a zip"), "not a NumPy .npz score file"),
    (lambda s: np.savez(s / "bare", values=np.ones(2)), "no conf or label array"),
])
def test_a_bad_score_folder_is_one_message(openood_run, change, words):
    folder, _ = openood_run
    change(folder / "scores")
    code, _, err = run("metrics", "--scores", str(folder))
    assert code == 2 and err.startswith("synood: error: ") and words in err


def test_a_folder_without_score_files_is_one_message(tmp_path):
    code, _, err = run("metrics", "--scores", str(tmp_path))
    assert code == 2 and "no .npz score files" in err
    code, _, err = run("metrics", "--scores", str(tmp_path / "missing"))
    assert code == 2 and "no such folder" in err


def test_worker_processes_decode_to_the_same_scores(tmp_path):
    rng = np.random.default_rng()
    for name, count in (("id", 5), ("ood", 3)):
        (tmp_path / name).mkdir()
        for i in range(count):  # new content each run: nothing comes from the cache
            Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    args = ["evaluate", "--suite", "tiny", "--id", str(tmp_path / "id"), "--ood", f"noise={tmp_path / 'ood'}",
            "--convention", "all", "--json"]
    before = model_caches()
    code, out, err = run(*args, "--workers", "2")
    assert code == 0, err
    for path in model_caches() - before:  # decoded again, in this process
        path.unlink()
    code, again, err = run(*args, "--workers", "0")
    assert code == 0, err
    assert flat(json.loads(again)["methods"]) == pytest.approx(flat(json.loads(out)["methods"]), abs=1e-6)
    code, mixed, err = run(*args, "--autocast", "--workers", "0")  # bfloat16 on this CPU, its own cache
    assert code == 0 and set(json.loads(mixed)["methods"]) == set(json.loads(out)["methods"]), err
    code, runs_out, _ = run("runs", "--json", json.loads(mixed)["run"])
    assert json.loads(runs_out)["inputs"]["autocast"] is True
    code, _, err = run(*args, "--workers", "-1")
    assert code == 2 and "--workers -1: give 0 (decode in this process) or more worker processes" in err
