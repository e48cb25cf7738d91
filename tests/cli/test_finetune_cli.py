"""`synood finetune`, `synood runs` and `synood evaluate --checkpoint` through the installed entry point, on
the tiny suite: a run recorded epoch by epoch, killed with SIGKILL and resumed to the same detector."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from synood.data import photos
from synood.config import cache_home
from tests.helpers.benchmarks import openood_layout
from tests.helpers.cli import ok, synood
from tests.helpers.reports import flat
from tests.helpers.generation import generate, train_folder

EPOCHS = ("--set", "projection.epochs=4", "--set", "negtune.epochs=3")
FAULT = """
import errno, os, signal, sys
from synood import cli
from synood.records import checkpoint
fault, name = sys.argv[1:3]
real = checkpoint.save_state
def save_state(path, *args, **kwargs):
    if fault == "full" and os.path.basename(str(path)) == name:  # the disk is full when this state is written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    real(path, *args, **kwargs)
    if fault == "kill" and os.path.basename(str(path)) == name:
        os.kill(os.getpid(), signal.SIGKILL)  # after this epoch's state is on disk, before the database hears of it
checkpoint.save_state = save_state
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    (root / "id").mkdir()
    for path in train_folder(root):
        shutil.copy(path, root / "id" / path.name)
    (root / "ood").mkdir()
    for photo in photos.photos("ood")[:4]:
        shutil.copy(photo.path, root / "ood" / photo.path.name)
    ok(synood("select", "--train", str(root / "train"), "--per-class", "2", "--out", str(root / "sel.jsonl")))
    ok(generate("--selection", str(root / "sel.jsonl"), "--out", str(root / "gen")))
    return root


def finetune(*args, timeout=600):
    return synood("finetune", "--suite", "tiny", *args, timeout=timeout)


def runs(*args):
    return json.loads(ok(synood("runs", "--json", *args)).stdout)


@pytest.fixture(scope="module")
def uninterrupted(folders):
    result = ok(finetune("--generation", str(folders / "gen"), *EPOCHS, "--json"))
    return json.loads(result.stdout), result


def test_finetune_records_every_epoch_and_writes_the_detector(uninterrupted, folders):
    done, result = uninterrupted
    assert done["status"] == "completed" and os.path.isfile(done["detector"])
    assert "4 synthetic and 4 ID images" in result.stderr and "stages projection x4, negatives x3" in result.stderr
    assert "negatives epoch 3: loss" in result.stderr
    run = runs(done["run"])
    assert [(e["stage"], e["epoch"]) for e in run["epochs"]] == [
        *(("projection", i) for i in range(1, 5)), *(("negatives", i) for i in range(1, 4))]
    assert run["inputs"]["synthetic"] == 4 and run["config"]["projection"]["epochs"] == 4
    assert os.path.getsize(done["detector"]) < 2_000_000  # a 32-d tiny projection plus the tuned rows
    kinds = {r["kind"]: r["status"] for r in runs()}
    assert kinds["generate"] == "completed" and kinds["finetune"] == "completed"
    listing = ok(synood("runs", "--kind", "finetune")).stdout
    assert done["run"] in listing and "completed" in listing


def test_evaluate_with_the_checkpoint_adds_the_tuned_score(uninterrupted, folders):
    done, _ = uninterrupted
    result = ok(synood("evaluate", "--suite", "tiny", "--id", str(folders / "id"), "--ood",
                       f"photos={folders / 'ood'}", "--checkpoint", done["run"], "--json"))
    report = json.loads(result.stdout)
    assert set(report["methods"]) == {"neglabel", "mcm", "msp", "energy", "synood"}
    assert 0 <= report["methods"]["synood"]["average"]["mos"]["auroc"] <= 100
    assert report["checkpoint"] == {"run": done["run"], "combination": "both"}
    assert runs(report["run"])["status"] == "completed"
    table = ok(synood("evaluate", "--suite", "tiny", "--id", str(folders / "id"), "--ood", f"photos={folders / 'ood'}",
                      "--checkpoint", done["detector"], "--scores", "neglabel,synood",
                      "--set", "finetune.combination=projection")).stdout
    assert "NegLabel" in table and "SynOOD" in table and "MCM" not in table


def test_a_benchmark_with_the_checkpoint_records_the_protocol_and_its_scores_reproduce(uninterrupted, tmp_path):
    done, _ = uninterrupted
    root = openood_layout(tmp_path / "openood")
    report = json.loads(ok(synood("evaluate", "--suite", "tiny", "--benchmark", "openood-v1.5", "--data-root",
                                  str(root), "--checkpoint", done["run"], "--bootstrap", "40", "--export-scores",
                                  str(tmp_path / "scores"), "--json")).stdout)
    assert list(report["methods"]) == ["neglabel", "mcm", "msp", "energy", "synood"]
    assert report["groups"] == {"near": ["SSB-hard", "NINCO"], "far": ["iNaturalist", "Textures", "OpenImage-O"]}
    near = report["methods"]["synood"]["groups"]["near"]["mos"]
    assert near["ci95"]["auroc"][0] <= near["auroc"] <= near["ci95"]["auroc"][1]
    run = runs(report["run"])
    assert run["inputs"]["benchmark"] == "openood-v1.5" and run["inputs"]["conventions"] == ["mos"]
    assert run["inputs"]["lists_digest"] == report["benchmark"]["lists_digest"]
    assert run["inputs"]["checkpoint"] == done["detector"] and run["inputs"]["methods"] == list(report["methods"])
    again = json.loads(ok(synood("metrics", "--scores", str(tmp_path / "scores"), "--bootstrap", "40",
                                 "--json")).stdout)
    assert again["groups"] == report["groups"]  # the protocol is recognised from the set names
    for method, r in report["methods"].items():
        assert flat(again["methods"][method]) == pytest.approx(flat(r))


def test_evaluate_a_generation_scores_its_sources_against_its_synthetic_images(folders):
    report = json.loads(ok(synood("evaluate", "--suite", "tiny", "--generation", str(folders / "gen"), "--scores",
                                  "neglabel,mcm", "--json")).stdout)
    assert report["id"]["count"] == 4 and report["ood"] == {
        "synthetic": {"folder": str(folders / "gen"), "count": 4, "skipped": 0}}
    assert list(report["methods"]) == ["neglabel", "mcm"]


def with_fault(fault: str, state: str, folders) -> subprocess.CompletedProcess:
    """`synood finetune` on the tiny suite with a fault when it writes the training state named `state`."""
    command = [sys.executable, "-c", FAULT, fault, state, "finetune", "--suite", "tiny", "--generation",
               str(folders / "gen"), *EPOCHS]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def resumes_to_the_uninterrupted_detector(run_id: str, uninterrupted) -> None:
    resumed = ok(finetune("--resume", run_id, "--json"))
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert f"[{run_id}] projection epoch 3" in resumed.stderr
    run = runs(run_id)
    assert [(e["stage"], e["epoch"]) for e in run["epochs"]] == [
        *(("projection", i) for i in range(1, 5)), *(("negatives", i) for i in range(1, 4))]
    expected = load_file(uninterrupted[0]["detector"])
    got = load_file(run["artifacts"]["detector"])
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] == got[name]).all(), name


def test_kill_9_then_resume_gives_the_uninterrupted_detector(uninterrupted, folders):
    killed = with_fault("kill", "0-projection-0002.safetensors", folders)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_id = next(r["id"] for r in runs("--kind", "finetune") if r["status"] == "interrupted")
    assert [e["epoch"] for e in runs(run_id)["epochs"]] == [1]  # epoch 2's state was written, not recorded
    resumes_to_the_uninterrupted_detector(run_id, uninterrupted)
    again = finetune("--resume", run_id)
    assert again.returncode == 2 and "is completed: only stopped, failed or interrupted runs resume" in again.stderr


def test_a_full_disk_fails_the_run_in_one_line_then_resume_completes_it(uninterrupted, folders):
    full = with_fault("full", "0-projection-0003.safetensors", folders)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-2000:]
    assert full.stderr.strip().splitlines()[-1] == (
        "synood: error: [Errno 28] No space left on device: "
        f"'{cache_home() / 'runs'}/{runs('--kind', 'finetune')[0]['id']}/state/0-projection-0003.safetensors'")
    run = runs("--kind", "finetune")[0]  # the newest
    assert run["status"] == "failed" and "No space left on device" in run["message"]
    run_id = run["id"]
    assert [e["epoch"] for e in runs(run_id)["epochs"]] == [1, 2]  # the epochs before the full disk, kept
    assert sorted(p.name for p in (cache_home() / "runs" / run_id / "state").iterdir()) == [
        "0-projection-0001.safetensors", "0-projection-0002.safetensors"]
    resumes_to_the_uninterrupted_detector(run_id, uninterrupted)


def test_bad_finetune_and_checkpoint_arguments_are_one_line_errors(folders, tmp_path):
    cases = [
        (finetune(), "give --generation DIR"),
        (finetune("--resume", "nope"), "no run 'nope'"),
        (finetune("--generation", str(tmp_path / "missing")), "missing"),  # before any model loads
        (finetune("--generation", str(folders / "gen"), "--set", "finetune.combination=all"),
         "finetune.combination: 'all' is not allowed; choose one of both, projection, negatives, none"),
        (synood("evaluate", "--suite", "tiny", "--id", str(folders / "id"), "--ood", f"x={folders / 'ood'}",
                "--checkpoint", str(tmp_path / "nope.safetensors")), "no such detector file"),
        (synood("evaluate", "--suite", "tiny", "--id", str(folders / "id"), "--ood", f"x={folders / 'ood'}",
                "--scores", "synood"), "synood needs --checkpoint"),
    ]
    for result, message in cases:
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
