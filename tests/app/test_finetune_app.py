"""The Fine-tuning tab for real, on the offline suite: runs launched, watched, stopped and evaluated through
gradio_client and headless Chromium; runs that outlive the app, and one killed mid-way resumed by a second app.
The background runner itself is tested in-process with a real run database."""
import json
import math
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from bench.common.finetune_tab import settings, wait_for
from bench.common.serve import running_app
from synood.method import scorers
from synood.records import runs
from synood.data import photos
from synood.config import Config, cache_home
from tests.helpers.browser import SCREENSHOTS
from ui.finetune_tab import COMBINATION_CHOICES, curves, hyperparameters, overlap_warnings
from ui.jobs import JobRunner

TEXTURES = ("brick", "grass", "gravel")
DIE_AFTER = '''"""On PYTHONPATH: the process SIGKILLs itself right after writing the training state named in
$SYNOOD_TEST_DIE_AFTER, before the run database hears of that epoch (a crash in the middle of a run)."""
import os
import signal

from synood.records import checkpoint

_save = checkpoint.save_state


def _save_then_die(path, *args, **kwargs):
    _save(path, *args, **kwargs)
    if os.path.basename(str(path)) == os.environ["SYNOOD_TEST_DIE_AFTER"]:
        os.kill(os.getpid(), signal.SIGKILL)


checkpoint.save_state = _save_then_die
'''


def store() -> runs.RunStore:
    return runs.store_for(cache_home())  # the session's SYNOOD_HOME, which every app of this session shares


def status_of(run_id: str) -> str:
    return store().get(run_id).status


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """An ID folder of the packaged ID photos and an OOD folder of three textures."""
    root = tmp_path_factory.mktemp("before-after")
    for name, chosen in (("id", photos.photos("id")), ("ood", [photos.by_name(t) for t in TEXTURES])):
        (root / name).mkdir()
        for photo in chosen:
            shutil.copy(photo.path, root / name / f"{photo.name}{photo.path.suffix}")
    return root / "id", root / "ood"


@pytest.fixture(scope="module")
def completed(offline_app, offline_generation) -> str:
    """A short run launched through the API and trained to completion: its id."""
    client = Client(offline_app, verbose=False)
    run_id, status, curve, table = client.predict(str(offline_generation), *settings(2, 3),
                                                  api_name="/finetune_launch")
    assert status.startswith(f"**Run {run_id}** · ") and "of 5 epochs (projection 2, then negatives 3)" in status
    assert run_id in [row[0] for row in table["data"]]
    wait_for(lambda: status_of(run_id) == "completed", f"run {run_id} to complete")
    return run_id


def test_tab_defaults_are_the_papers():
    values = settings(Config().projection.epochs, Config().negtune.epochs)
    assert hyperparameters(Config(), *values).to_dict() == Config().to_dict()
    assert [value for _, value in COMBINATION_CHOICES] == list(scorers.COMBINATIONS)


def test_before_after_warns_when_it_evaluates_on_the_training_folders(tmp_path):
    train, held_out = tmp_path / "train" / "n02124075", tmp_path / "held-out"
    for folder in (train, held_out):
        folder.mkdir(parents=True)
        shutil.copy(photos.by_name("cat").path, folder / "cat.png")
    trained = [train / "cat.png"]
    assert overlap_warnings(trained, {"ID": str(held_out), "OOD": str(tmp_path / "held-out")}) == []
    assert overlap_warnings(trained, {"ID": str(train)}) == [
        f"the ID folder `{train}` is the training folder `{train}` (1 of its images were trained on)"]
    assert overlap_warnings(trained, {"ID": str(tmp_path), "OOD": str(tmp_path / "train")}) == [
        f"the ID folder `{tmp_path}` holds the training folder `{train}` (1 of its images were trained on)",
        f"the OOD folder `{tmp_path / 'train'}` holds the training folder `{train}` (1 of its images were trained on)"]
    inside = train / "more"
    inside.mkdir()
    assert overlap_warnings(trained, {"OOD": str(inside)}) == [
        f"the OOD folder `{inside}` lies inside the training folder `{train}` (0 of its images were trained on)"]


def test_the_empty_curve_has_titled_axes_and_says_so():
    layout = json.loads(curves([]).to_json())["layout"]
    assert [a["text"] for a in layout["annotations"] if a["text"] == "no epochs yet"] == ["no epochs yet"] * 2
    assert (layout["xaxis"]["title"]["text"], layout["xaxis2"]["title"]["text"]) == ("epoch (stages in order)",) * 2
    assert (layout["yaxis"]["title"]["text"], layout["yaxis2"]["title"]["text"]) == ("loss", "share on its own label")
    assert len(curves([]).data) == 2  # an empty trace per panel: plotly draws no axes for a panel without one


def test_runner_runs_one_job_at_a_time_and_stops_and_records_failures(tmp_path):
    db = runs.RunStore(tmp_path / "runs.sqlite")
    runner = JobRunner(db)
    first, waiting, failing, last = (db.create("finetune", {}, {}).id for _ in range(4))
    started = []

    def until_stopped(run_id):
        def work(stop):
            started.append(run_id)
            while not stop():
                time.sleep(0.01)
            db.update(run_id, status="stopped")
        return work

    def boom(stop):
        started.append(failing)
        raise RuntimeError("boom")

    def finish(stop):
        started.append(last)
        db.update(last, status="completed")

    for run_id, work in ((first, until_stopped(first)), (waiting, until_stopped(waiting)), (failing, boom),
                         (last, finish)):
        assert runner.submit(run_id, work) == run_id
    wait_for(lambda: started == [first], "the first job to start", 30)
    assert [db.get(r).status for r in (waiting, failing, last)] == ["queued"] * 3  # one at a time
    assert db.get(last).message == "waiting for 3 run(s) before it: this app runs one finetune run at a time"
    with pytest.raises(ValueError, match="already queued or running"):
        runner.submit(first, finish)
    assert runner.stop(waiting) and not runner.active(waiting)
    assert (db.get(waiting).status, db.get(waiting).message) == ("stopped", "stopped before it started; resume to "
                                                                             "start it")
    assert runner.stop(first)
    wait_for(lambda: db.get(last).status == "completed", "the last job", 30)
    assert started == [first, failing, last]  # the stopped queued job never ran; a failure did not stop the worker
    assert (db.get(first).status, db.get(failing).status) == ("stopped", "failed")
    assert db.get(failing).message == "RuntimeError: boom"
    wait_for(lambda: not runner.active(last), "the runner to let go of the last job", 30)
    assert not runner.stop(last)


def test_client_launches_watches_and_evaluates(offline_app, completed, folders):
    client = Client(offline_app, verbose=False)
    status, curve = client.predict(completed, api_name="/finetune_show")
    assert f"**Run {completed}** · **completed** · 5 of 5 epochs (projection 2, then negatives 3)" in status
    assert "2 synthetic and 2 ID images" in status and "detector.safetensors" in status
    assert "Conventions: projection input raw · stage 3 parameters raw · cosine schedule per epoch" in status
    traces = json.loads(curve["plot"])["data"]
    assert [(t["name"], t["x"]) for t in traces] == [("projection", [1, 2]), ("projection", [1, 2]),
                                                     ("negatives", [3, 4, 5]), ("negatives", [3, 4, 5])]
    assert all(0 <= y <= 1 for t in traces[1::2] for y in t["y"])  # accuracy
    assert [(e["stage"], e["epoch"]) for e in store().epochs(completed)] == [
        ("projection", 1), ("projection", 2), ("negatives", 1), ("negatives", 2), ("negatives", 3)]

    table = client.predict(api_name="/finetune_runs")
    row = {r[0]: r for r in table["data"]}[completed]
    assert row[1] == "completed" and row[4:7] == [2, 2, store().get(completed).inputs["negatives_used"]]
    assert row[7] == f"{store().get(completed).summary['loss']:.4f}" and row[8].endswith(" %")
    assert Path(row[9]).is_file() and row[9] == store().get(completed).artifacts["detector"]

    id_folder, ood_folder = folders
    metrics, histogram, note = client.predict(completed, str(id_folder), str(ood_folder),
                                              api_name="/finetune_evaluate")
    others = [f"{scorers.SCORERS[name].title} (before)" for name in scorers.standard()[1:]]
    rows = ["NegLabel (before)", "SynOOD (after)", *others]  # the comparison that matters first
    assert [r[:2] for r in metrics["data"]] == [[row, convention] for row in rows
                                                for convention in ("MOS (paper)", "OpenOOD")]
    for _, _, auroc, fpr95, *_ in metrics["data"]:
        assert isinstance(auroc, float) and math.isfinite(auroc) and 0 <= auroc <= 100 and 0 <= fpr95 <= 100
    ids = len(photos.photos("id"))
    assert note.startswith(f"{ids} ID and 3 OOD images · the detector of run {completed}, combination **both**")
    bars = json.loads(histogram["plot"])["data"]
    assert [(b["name"], len(b["x"])) for b in bars] == [("ID", ids), ("OOD", 3)] * 2
    record = store().list(kind="evaluate", limit=1)[0]
    assert record.status == "completed" and record.inputs["finetune_run"] == completed
    after = [r for r in metrics["data"] if r[:2] == ["SynOOD (after)", "MOS (paper)"]][0]
    assert record.summary["methods"]["synood"]["mos"]["auroc"] == pytest.approx(after[2], abs=0.01)


def test_client_rejects_bad_input_and_stops_a_run(offline_app, offline_generation, completed, folders):
    client = Client(offline_app, verbose=False)
    generation = str(offline_generation)
    for path, values, message in (("", settings(1, 1), "Give a generation folder"),
                                  (generation + "-missing", settings(1, 1), "no such file or folder"),
                                  (generation, settings(-1, 1), "Value -1 is less than minimum value 0"),
                                  (generation, settings(0, 0), "Nothing to train"),
                                  (generation, settings(1, 1, batch=0), "Value 0 is less than minimum value 1")):
        with pytest.raises(Exception, match=message):
            client.predict(path, *values, api_name="/finetune_launch")
    with pytest.raises(Exception, match="only stopped, failed or interrupted runs resume"):
        client.predict(completed, api_name="/finetune_resume")
    with pytest.raises(Exception, match="Give both an ID folder and an OOD folder"):
        client.predict(completed, "", str(folders[1]), api_name="/finetune_evaluate")
    assert client.predict("no-such-run", api_name="/finetune_show")[0].startswith("no run 'no-such-run'")

    run_id = client.predict(generation, *settings(300, 300, batch=1), "unit", "unit", "batch",
                            api_name="/finetune_launch")[0]  # the conventions the authors' code does not use
    recorded = store().get(run_id).config
    assert (recorded["projection"]["input"], recorded["negtune"]["parameter"], recorded["negtune"]["schedule"]) == (
        "unit", "unit", "batch")
    wait_for(lambda: store().epochs(run_id), "a first epoch")
    with pytest.raises(Exception, match="is running and has no detector yet"):
        client.predict(run_id, str(folders[0]), str(folders[1]), api_name="/finetune_evaluate")
    client.predict(run_id, api_name="/finetune_stop")
    wait_for(lambda: status_of(run_id) == "stopped", "the run to stop")
    assert 1 <= len(store().epochs(run_id)) < 600
    status, _ = client.predict(run_id, api_name="/finetune_show")
    assert "· **stopped** ·" in status and "resume to continue from the last epoch" in status
    assert "Conventions: projection input unit · stage 3 parameters unit · cosine schedule per batch" in status


def test_runs_outlive_the_app_and_a_killed_run_resumes(completed, offline_generation, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DIE_AFTER)
    dying = {"PYTHONPATH": str(hook), "SYNOOD_TEST_DIE_AFTER": "0-projection-0002.safetensors"}
    with running_app("--suite", "offline", log=tmp_path / "first.log", env=dying) as url:
        run_id = Client(url, verbose=False).predict(str(offline_generation), *settings(3, 3),
                                                    api_name="/finetune_launch")[0]
        wait_for(lambda: not answers(url), "the app to die after epoch 2")
    assert status_of(run_id) == "interrupted"
    assert [(e["stage"], e["epoch"]) for e in store().epochs(run_id)] == [("projection", 1)]

    with running_app("--suite", "offline", log=tmp_path / "second.log") as url:
        client = Client(url, verbose=False)
        rows = {r[0]: r for r in client.predict(api_name="/finetune_runs")["data"]}
        assert rows[completed][1] == "completed" and Path(rows[completed][9]).is_file()
        assert rows[run_id][1] == "interrupted"
        assert "· **interrupted** · 1 of 6 epochs" in client.predict(run_id, api_name="/finetune_show")[0]
        client.predict(run_id, api_name="/finetune_resume")
        wait_for(lambda: status_of(run_id) == "completed", "the resumed run to complete")
        status, _ = client.predict(run_id, api_name="/finetune_show")
    assert "· **completed** · 6 of 6 epochs" in status
    assert [(e["stage"], e["epoch"]) for e in store().epochs(run_id)] == [
        ("projection", 1), ("projection", 2), ("projection", 3), ("negatives", 1), ("negatives", 2), ("negatives", 3)]
    assert Path(store().get(run_id).artifacts["detector"]).is_file()


RUN_BOX = "#finetune-run textarea, #finetune-run input"


def curve_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('#finetune-curve .js-plotly-plot');"
                         " return p && p.data ? p.data.filter((t, i) => i % 2 === 0)"
                         ".reduce((n, t) => n + t.x.length, 0) : 0; }")


@pytest.mark.browser
def test_finetune_tab_in_chromium(offline_app, offline_generation, completed, folders, browser):
    """Launch with the paper's defaults: the curve and the table row fill in; evaluate; pick another run; reload."""
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.goto(offline_app)
    page.get_by_role("tab", name="Fine-tuning").click()
    shown = page.locator(RUN_BOX).first
    page.wait_for_function(f"() => document.querySelector({RUN_BOX!r}).value !== ''")  # the newest run, on load
    before = shown.input_value()
    page.locator("#finetune-path textarea, #finetune-path input").first.fill(str(offline_generation))
    page.locator("#finetune-launch").click()
    page.wait_for_function(f"() => document.querySelector({RUN_BOX!r}).value !== {before!r}", timeout=300_000)
    run_id = shown.input_value()
    status = page.locator("#finetune-status")
    status.get_by_text(f"Run {run_id} · completed · 8 of 8 epochs").wait_for(timeout=300_000)
    page.wait_for_function("() => { const p = document.querySelector('#finetune-curve .js-plotly-plot');"
                           " return p && p.data && p.data.length === 4 && p.data[2].x.length === 5; }",
                           timeout=30_000)
    assert curve_points(page) == 8 and status_of(run_id) == "completed"
    row = page.locator("#finetune-runs [role=row]").filter(has_text=run_id).filter(has_text="completed")
    row.first.wait_for(timeout=30_000)
    assert "detector.safetensors" in row.first.inner_text()

    id_folder, ood_folder = folders
    page.locator("#finetune-id textarea, #finetune-id input").first.fill(str(id_folder))
    page.locator("#finetune-ood textarea, #finetune-ood input").first.fill(str(ood_folder))
    page.locator("#finetune-evaluate").click()
    page.locator("#finetune-note").get_by_text(f"the detector of run {run_id}").wait_for(timeout=120_000)
    page.locator("#finetune-metrics [role=row]").filter(has_text="SynOOD (after)").first.wait_for(timeout=30_000)
    page.locator("#finetune-histogram .js-plotly-plot").first.wait_for(timeout=30_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "finetune.png"), full_page=True)

    page.locator("#finetune-runs [role=gridcell]").filter(has_text=completed).first.click()
    status.get_by_text(f"Run {completed}").wait_for(timeout=30_000)
    assert shown.input_value() == completed
    page.wait_for_function("() => document.querySelector('#finetune-curve .js-plotly-plot').data[2].x.length === 3")

    page.reload()
    page.get_by_role("tab", name="Fine-tuning").click()
    page.locator("#finetune-runs [role=row]").filter(has_text=run_id).filter(has_text="completed").first.wait_for(
        timeout=30_000)
    assert "Traceback" not in page.content()
    page.close()
