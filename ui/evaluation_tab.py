"""Evaluation tab: the paper's table for folders, a benchmark protocol or a generation, run in the background and
recorded; per-set score histograms with the 95 %-ID threshold, the hardest cases, two scores side by side, and
every past evaluation to reopen. Every image it opens lies under the app's data roots."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import plotly.graph_objects as go

from synood.config import Config, ConfigError
from synood.errors import UserError
from synood.models import Suite
from synood.models.suites import SUITE_CHOICES
from synood.records import runs
from synood.records.runs import ACTIVE, EvaluateRecord, Run, RunError

from .access import DataRoots, confined_folder, confined_generation
from .detector import DetectorHolder
from .errors import shows_user_errors
from .jobs import JobRunner
from .neglabel_tab import Inspector
from .noise_tab import NoiseTab
from .notes import standin_note
from .opening import CLICK_ACTIONS, Shown, wire
from .reports import download, link
from .runs_list import RunsList

if TYPE_CHECKING:  # torch loads on first use: the app must start in seconds
    from synood.data.features import FeatureSet
    from synood.method.scorers import Scorer
    from synood.pipelines.detect import Detector
    from synood.pipelines.evaluation import Saved
    from synood.records.checkpoint import TunedDetector

INTRO = (
    "The paper's table for your images: pick an **ID** set and **OOD** sets (folders, a benchmark protocol such as "
    "the paper's Table 1, or a generation: its sources against its synthetic images), the scores to compare and, "
    "optionally, a fine-tuned detector. The evaluation runs in the background (Stop stops it; a reload or a restart "
    "keeps it listed below) and is recorded with every image's scores, so that each past run reopens here: the "
    "table, each score's **histograms** with the threshold that keeps 95 % of the ID images, the **hardest cases** "
    "(the OOD images a score found most in-distribution, the ID images it found least) and **two scores side by "
    "side**. Click an image to inspect it in the Negative labels tab, or to make a boundary sample of it. A stopped, "
    "failed or interrupted run goes on under its own id with **Resume**."
)
SOURCES = [("ID and OOD folders", "folders"), ("A benchmark protocol", "benchmark"),
           ("A generation: its sources (ID) against its synthetic images (OOD)", "generation")]
CONVENTION_CHOICES = [("MOS (the paper's tables)", "mos"), ("OpenOOD v1.5", "openood"),
                      ("NegLabel's code", "neglabel"), ("all three", "all")]
RUN_HEADERS = ["Run", "Status", "Created", "ID set", "OOD sets", "Scores", "Best average AUROC %"]
MAX_BOOTSTRAP = 10_000
MAX_CASES = 48
NO_DETECTOR = "none"
TPR = 0.95
RESUMED = {"interrupted": "The app stopped while it ran", "stopped": "It was stopped", "failed": "It failed"}


@dataclass
class Plan:
    """What one evaluation run does, as launched or read back from its record to resume it: the sets (each set's
    images and folder, the ID one named), the scorers and the tuned detector they read, the conventions, the
    bootstrap and a protocol's group averages."""

    id_set: str
    found: dict[str, list[Path]]
    folders: dict[str, str]
    scorers: dict[str, Scorer]
    tuned: TunedDetector | None
    combination: str
    conventions: list[str]
    resamples: int = 0
    seed: int = 0
    groups: dict[str, list[str]] | None = None


def ood_folders(text: str) -> dict[str, str]:
    """The OOD folders box: one folder per line, `NAME=DIR` or a bare DIR named after its last part."""
    found: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        name, sep, folder = line.partition("=")
        name, folder = (name.strip(), folder.strip()) if sep else (Path(line).name, line)
        if not name or not folder:
            raise UserError(f"OOD folders: {line!r} is neither NAME=DIR nor a folder.")
        if name in found or name in ("ID", "Average"):
            raise UserError(f"OOD folders: the set name {name!r} is used twice (or is reserved); name it: NAME=DIR.")
        found[name] = folder
    if not found:
        raise UserError("Give at least one OOD folder (one per line, NAME=DIR or DIR).")
    return found


def run_columns(run: Run) -> list | None:
    """An evaluate run's row in the runs table after its id, status and creation time (None for a row this version
    cannot read)."""
    try:
        record = EvaluateRecord.of(run)
    except (RunError, KeyError, TypeError):
        return None
    best = max((m.get("mos", next(iter(m.values()), {})).get("auroc", float("nan"))
                for m in record.averages.values() if m), default=None)
    return [record.id_set, ", ".join(n for n in record.sets if n != record.id_set), ", ".join(record.methods),
            "" if best is None else f"{best:.2f}"]


def describe(run: Run) -> str:
    """An evaluate run's status line and where it stands, as Markdown."""
    line = f"**Run {run.id}** · **{run.status}** · {link(run.id)}"
    if run.status in ("queued", "running") and run.message:
        line += f" · {run.message}"
    elif run.message:
        line += f"\n\n{run.message}"
    if run.status in RESUMED and run.inputs.get("source"):
        line += (f"\n\n{RESUMED[run.status]}: press **Resume** to finish it as this run (the images encoded so far "
                 "are cached).")
    elif run.status in RESUMED:  # recorded by `synood evaluate` or an older version: it cannot be resumed here
        line += f"\n\n{RESUMED[run.status]}: run it again (press **Run**, or `synood evaluate`)."
    return line


def set_title(name: str, ood: bool) -> str:
    """A set's name saying whether it is the ID or an OOD set ("textures (OOD)"; the set named "ID" stays "ID")."""
    return name if name == "ID" else f"{name} ({'OOD' if ood else 'ID'})"


def empty_figure(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font=dict(color="#6b7280", size=14))
    figure.update_layout(height=300, xaxis_visible=False, yaxis_visible=False, template="plotly_white")
    return figure


class EvaluationTab:
    """The tab's handlers, callable without a page: the suite, config and data roots, the run database, a background
    runner of its own, and the shared detector."""

    def __init__(self, suite: Suite, config: Config, roots: DataRoots):
        self.suite, self.config, self.roots = suite, config, roots
        self.detector_roots = roots.with_runs(config.paths.home)
        self.store = runs.store_for(config.paths.home)
        self.runner = JobRunner(self.store, kind="evaluate")
        self.runs = RunsList(self.store, "evaluate", run_columns)
        self.holder = DetectorHolder.shared(suite, config)
        self._saved: dict[str, Saved] = {}
        self.run_box: gr.Textbox | None = None  # once laid out: what a "?run=ID" link sets

    # 1. Choosing the sets (every file under the data roots) and the scores.
    def sets_of(self, source: str, id_folder: str, ood_text: str, protocol: str, data_root: str,
                generation: str) -> tuple[str, dict[str, list[Path]], dict[str, str], dict]:
        """(ID set name, each set's images, each set's folder, what the record keeps of the source)."""
        if source == "benchmark":
            if not (data_root or "").strip():
                raise UserError(f"Give the data root holding the {protocol} sets (see `synood data check`).")
            return self.benchmark_sets(protocol, data_root)
        if source == "generation":
            if not (generation or "").strip():
                raise UserError("Give a generation folder or its manifest.jsonl first.")
            return self.generation_sets(generation)
        if not (id_folder or "").strip():
            raise UserError("Give an ID folder first.")
        return self.folder_sets({"ID": id_folder, **ood_folders(ood_text)})

    def benchmark_sets(self, protocol: str, data_root: str) -> tuple[str, dict[str, list[Path]], dict[str, str], dict]:
        """sets_of a benchmark protocol under `data_root` (listed files outside the data roots skipped, in a warning);
        the record keeps the protocol, the root, its group averages and its file lists' digest."""
        from synood.data import benchmarks

        chosen = benchmarks.benchmark(protocol)
        root = self.roots.check(data_root)
        located = benchmarks.usable(chosen, root)
        found = {}
        for name, item in located.items():
            inside, outside = self.roots.split(item.paths)
            if outside:
                gr.Warning(f"{name}: {len(outside):,} listed files lead outside the data roots and are skipped.")
            found[name] = inside
        return (chosen.id_set.name, found, {n: str(i.where) for n, i in located.items()},
                {"benchmark": chosen.name, "data_root": str(root), "groups": chosen.grouped(),
                 "lists_digest": benchmarks.lists_digest(found, root)})

    def generation_sets(self, generation: str) -> tuple[str, dict[str, list[Path]], dict[str, str], dict]:
        """sets_of a generation: its sources (ID) against its synthetic images, every one under the data roots."""
        from synood.pipelines import evaluation

        path = confined_generation(self.roots, generation)
        found = evaluation.generation_sets(path)
        return "sources", found, {name: path for name in found}, {"generation": path}

    def folder_sets(self, folders: dict[str, str]) -> tuple[str, dict[str, list[Path]], dict[str, str], dict]:
        """sets_of folders (set name -> folder, "ID" the ID one), each and every image in it under the data roots."""
        from synood.pipelines import evaluation

        confined = {name: confined_folder(self.roots, folder) for name, folder in folders.items()}
        return "ID", {name: evaluation.folder_images(name, folder) for name, folder in confined.items()}, confined, {}

    def scores_of(self, chosen: list[str], detector_run: str) -> tuple[list[str], str | None]:
        """The registry's scores picked (plus the tuned one, "synood", with a fine-tuning run) and that run's
        detector file."""
        from synood.method.scorers import choices

        methods = [name for name in choices() if name in (chosen or [])]
        detector_file = None
        if detector_run and detector_run != NO_DETECTOR:
            run = self.store.get(detector_run)
            detector_file = run.artifacts.get("detector")
            if run.kind != "finetune" or not detector_file:
                raise UserError(f"Run {run.id} has no fine-tuned detector: pick a completed fine-tuning run.")
            methods.append("synood")
        if not methods:
            raise UserError("Pick at least one score.")
        return methods, detector_file

    def scorers_of(self, methods: list[str], detector_file: str | None,
                   combination: str) -> tuple[dict[str, Scorer], TunedDetector | None]:
        """The scorers `methods` names, a trained one reading the detector file (which must lie under the data roots
        or the app's runs folder) under `combination`, and that file's tuned detector."""
        from synood.method.scorers import build
        from synood.records.checkpoint import load_detector

        tuned = load_detector(self.detector_roots.check(detector_file)) if detector_file else None
        return {m: build(m, tuned, combination) for m in methods}, tuned

    # 2. Running one in the background (launched, or resumed under its own id).
    @shows_user_errors
    def launch(self, source: str, id_folder: str, ood_text: str, protocol: str, data_root: str, generation: str,
               chosen: list[str], detector_run: str, convention: str, bootstrap: float | None, seed: float | None,
               progress=gr.Progress()):
        """Queue an evaluation of the chosen sets and scores: its id, then the runs table."""
        from synood.method.metrics import CONVENTIONS

        resamples, seed = int(bootstrap or 0), int(seed or 0)
        if not 0 <= resamples <= MAX_BOOTSTRAP:
            raise UserError(f"Bootstrap resamples must be between 0 and {MAX_BOOTSTRAP:,}.")
        conventions = list(CONVENTIONS) if convention == "all" else [convention]
        id_set, found, folders, source_context = self.sets_of(source, id_folder, ood_text, protocol, data_root,
                                                              generation)
        methods, detector_file = self.scores_of(chosen, detector_run)
        combination = self.config.finetune.combination
        scorers, tuned = self.scorers_of(methods, detector_file, combination)
        groups = source_context.pop("groups", None)
        plan = Plan(id_set, found, folders, scorers, tuned, combination, conventions, resamples, seed, groups)
        detector = self.detector_for(plan, progress)
        context = {"suite": self.suite.name, "checkpoint": detector_file, "source": source, **source_context,
                   **({"bootstrap": {"resamples": resamples, "seed": seed}} if resamples else {})}
        run = self.store.create("evaluate", self.config.to_dict("models", "neglabel", "finetune"),
                                EvaluateRecord(folders, id_set, methods, conventions, context).inputs(),
                                status="queued")
        self.submit(run.id, plan, detector)
        return run.id, self.runs.rows()

    @shows_user_errors
    def resume(self, run_id: str, progress=gr.Progress()):
        """Queue a stopped, failed or interrupted evaluation again under its own id, on its recorded sets, scores and
        settings (the images it encoded are cached): the shown run's status and the runs table."""
        run = self.find(run_id)
        plan = self.recorded_plan(run)
        detector = self.detector_for(plan, progress)
        self.submit(run.id, plan, detector)
        return describe(self.store.get(run.id)), self.runs.rows()

    def recorded_plan(self, run: Run) -> Plan:
        """The plan of a run to resume, rebuilt from its record; a UserError when it is completed, active, of
        another suite or version, or its inputs changed since it started."""
        from synood.method.scorers import SCORERS

        if self.runner.active(run.id):
            raise UserError(f"Run {run.id} is already queued or running in this app: wait until it has finished or "
                            "stopped.")
        if run.status == "completed":
            raise UserError(f"Run {run.id} is already completed: press Run for a new evaluation.")
        if run.status in ACTIVE:
            raise UserError(f"Run {run.id} is {run.status} in another process ({run.host}, pid {run.pid}).")
        record = EvaluateRecord.of(run)
        context = record.context
        if context.get("source") not in {value for _, value in SOURCES}:
            raise UserError(f"Run {run.id} was not started in this tab (`synood evaluate` or an older version recorded "
                            "it): press Run for a new evaluation.")
        unknown = [m for m in record.methods
                   if m not in SCORERS or (SCORERS[m].kind == "trained" and not context.get("checkpoint"))]
        if unknown:
            raise UserError(f"Run {run.id} cannot resume: this version cannot build its {', '.join(unknown)} score.")
        if context.get("suite") != self.suite.name:
            recorded = context.get("suite")
            how = (f"--suite {recorded}" if recorded in SUITE_CHOICES else
                   "--suite auto with the same models on this machine")  # a per-role mix of auto
            raise UserError(f"Run {run.id} was recorded with the {recorded} suite and this app runs the "
                            f"{self.suite.name} suite: start the app with {how} to resume it.")
        try:
            id_set, found, folders, groups = self.recorded_sets(record)
        except UserError as exc:
            raise UserError(f"Run {run.id} cannot resume: {exc}") from None
        try:
            combination = runs.config_of(run, self.config.paths.home).finetune.combination
        except ConfigError as exc:
            raise UserError(f"Run {run.id}: its stored configuration does not fit this version ({exc}).") from None
        scorers, tuned = self.scorers_of(record.methods, context.get("checkpoint"), combination)
        bootstrap = context.get("bootstrap", {})
        return Plan(id_set, found, folders, scorers, tuned, combination, record.conventions,
                    bootstrap.get("resamples", 0), bootstrap.get("seed", 0), groups)

    def recorded_sets(self, record: EvaluateRecord) -> tuple[str, dict[str, list[Path]], dict[str, str], dict | None]:
        """(ID set name, each set's images, each set's folder, group averages) of a recorded evaluation, read again;
        a UserError when they changed (a folder gone, a benchmark's file lists edited)."""
        context = record.context
        if context["source"] == "benchmark":
            id_set, found, folders, now = self.benchmark_sets(context["benchmark"], context["data_root"])
            if now["lists_digest"] != context.get("lists_digest"):
                raise UserError(f"the {context['benchmark']} file lists under {context['data_root']} changed since it "
                                "started; press Run for a new evaluation.")
            return id_set, found, folders, now["groups"]
        if context["source"] == "generation":
            return *self.generation_sets(context["generation"])[:3], None
        return *self.folder_sets(record.sets)[:3], None

    def detector_for(self, plan: Plan, progress: gr.Progress) -> Detector:
        """The shared detector, checked to be the one the plan's tuned detector was trained on."""
        detector = self.holder.get(progress)
        if plan.tuned is not None:
            plan.tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
        return detector

    def submit(self, run_id: str, plan: Plan, detector: Detector) -> None:
        """Queue the run's evaluation on the background runner: it evaluates the plan, saves the evaluation in the
        run's folder and completes the run (or records it stopped or failed)."""
        from synood.pipelines import evaluation

        home, suite = self.config.paths.home, self.suite.name

        def work(stop) -> None:
            def evaluate(progress):
                pools = {s.pool: detector.pool(s.pool, progress) for s in plan.scorers.values()}
                result = evaluation.evaluate(plan.found, plan.scorers, detector.encoder, detector.classifier,
                                             detector.inputs(), plan.conventions, plan.id_set, plan.folders,
                                             progress=progress, bootstrap=plan.resamples, seed=plan.seed, pools=pools,
                                             groups=plan.groups)
                result.suite = suite
                if plan.tuned is not None:
                    result.checkpoint = {"run": plan.tuned.meta.get("run"), "combination": plan.combination}
                return result
            evaluation.execute(self.store, run_id, home, evaluate, stop=stop)

        try:
            self.runner.submit(run_id, work)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    @shows_user_errors
    def stop(self, run_id: str) -> str:
        """Ask the shown run to stop at its next step (a warning when it is not running here)."""
        run = self.find(run_id)
        if not self.runner.stop(run.id):
            gr.Warning(f"Run {run.id} is not running in this app (status: {run.status}).")
        return describe(self.store.get(run.id))

    def find(self, run_id: str) -> Run:
        """The evaluate run `run_id`; a UserError when there is none or it is another kind."""
        if not (run_id or "").strip():
            raise UserError("Run an evaluation or pick one in the table first.")
        run = self.store.get(run_id.strip())
        if run.kind != "evaluate":
            raise UserError(f"Run {run.id} is a {run.kind} run, not an evaluation.")
        return run

    # 3. Showing a run: status, table, histograms, hardest cases, two scores side by side.
    def saved(self, run: Run) -> Saved | None:
        """The run's saved evaluation (read once per run), None while it has none."""
        from synood.pipelines.evaluation import EvaluationError, reopen

        if run.id not in self._saved and run.artifacts.get("evaluation"):
            try:
                self._saved[run.id] = reopen(run.artifacts["evaluation"])
            except EvaluationError as exc:
                gr.Warning(str(exc))
                return None
        return self._saved.get(run.id)

    @shows_user_errors
    def show(self, run_id: str):
        """The shown run's status, table and the choices of its views (scores, OOD sets)."""
        from synood.pipelines.report import metrics_tables, title_of

        run_id = (run_id or "").strip()
        none = gr.update(choices=[], value=None)
        if not run_id:
            return "Run an evaluation or pick one in the table.", "", none, none, none, none
        try:
            run = self.find(run_id)
        except (RunError, UserError) as exc:
            return str(exc), "", none, none, none, none
        saved = self.saved(run) if run.status == "completed" else None
        if saved is None:
            note = "" if run.status != "completed" else "This run's per-image scores were not saved (an older run)."
            return describe(run) + (f"\n\n{note}" if note else ""), "", none, none, none, none
        skipped = sum(entry.get("skipped", 0) for entry in (saved.report["id"], *saved.report["ood"].values()))
        note = f"\n\n{skipped:,} unreadable image files were skipped (not scored)." if skipped else ""
        scores = [(title_of(name), name) for name in saved.report["methods"]]
        sets = [("every OOD set", "")] + [(name, name) for name in saved.report["ood"]]
        second = scores[1][1] if len(scores) > 1 else scores[0][1]
        return (describe(run) + note, metrics_tables(saved.report), gr.update(choices=scores, value=scores[0][1]),
                gr.update(choices=sets, value=""), gr.update(choices=scores, value=scores[0][1]),
                gr.update(choices=scores, value=second))

    @shows_user_errors
    def view(self, run_id: str, count: float, progress=gr.Progress()):
        """The whole view of the shown run in one answer (so that a slow answer for a run shown before can never
        land after this one): `show`, then the histogram, the hardest cases and the side by side of its first
        scores."""
        shown = self.show(run_id)
        scorer, x, y = (update.get("value") for update in (shown[2], shown[4], shown[5]))
        return (*shown, self.histogram(run_id, scorer), *self.hardest(run_id, scorer, "", count, progress),
                *self.side_by_side(run_id, x, y, progress))

    @shows_user_errors
    def histogram(self, run_id: str, scorer: str | None) -> go.Figure:
        """One score's per-set histograms with the 95 %-ID threshold."""
        from synood.pipelines.report import histogram

        saved = self._current(run_id)
        if saved is None or not scorer:
            return empty_figure("No scores to show yet")
        self.check_scores(saved, scorer)
        return histogram(saved, scorer)

    @staticmethod
    def check_scores(saved: Saved, *names: str) -> None:
        """A UserError naming a score the evaluation does not hold (the API may send any name)."""
        unknown = [name for name in names if name not in saved.report["methods"]]
        if unknown:
            raise UserError(f"This evaluation has no {', '.join(unknown)} score; it has "
                            f"{', '.join(saved.report['methods'])}.")

    def _current(self, run_id: str) -> Saved | None:
        try:
            run = self.find(run_id)
        except (RunError, UserError):
            return None
        return self.saved(run) if run.status == "completed" else None

    def features(self, paths: list[Path], progress: gr.Progress) -> FeatureSet:
        """The cached features and content hashes of the readable images among `paths` that lie under the data
        roots (what the detector sees in them)."""
        from synood.data.features import image_features

        detector = self.holder.get(progress)
        return image_features(detector.encoder, [p for p in paths if self.roots.contains(p)])

    def gallery(self, items: list[tuple[Path, str]], found: FeatureSet) -> tuple[list[tuple[Any, str]], list[Shown]]:
        """The gallery of `items` (image, caption) and its records: each image `found` read as its thumbnail file,
        made once per content (featuremap_view's cache), any other as a placeholder (outside the roots, unreadable)."""
        from ui.featuremap_view import thumbnails
        from ui.thumbnails import placeholder, thumbnail_dir

        try:
            made = dict(zip(found.paths, thumbnails(found.paths, found.hashes)))
        except OSError as exc:
            raise UserError(f"Cannot write thumbnails under {thumbnail_dir()}: {exc.strerror or exc}") from None
        shown: list[tuple[Any, Shown]] = []
        for path, caption in items:
            if path in made:
                shown.append((str(made[path]), Shown(str(path), caption)))
            else:
                why = "cannot be read" if self.roots.contains(path) else "outside the data roots"
                shown.append((placeholder(why, (160, 160)), Shown("", caption)))
        return [(image, record.caption) for image, record in shown], [record for _, record in shown]

    @shows_user_errors
    def hardest(self, run_id: str, scorer: str | None, only: str | None, count: float, progress=gr.Progress()):
        """The gallery of the hardest cases of one score (OOD scored most ID, then ID scored least) and its items."""
        from synood.pipelines.hardest import hardest

        saved = self._current(run_id)
        if saved is None or not scorer:
            return [], []
        found = hardest(saved, scorer, int(count), [only] if only else None)
        cases = [(ood, case.path, case) for ood, group in ((True, found.ood), (False, found.id)) for case in group
                 if case.path]
        features = self.features([path for _, path, _ in cases], progress)
        labels = self.nearest_labels(features, progress)
        return self.gallery([(path, f"{set_title(case.set, ood)} · score {case.score:.6g}" + labels.get(path, ""))
                             for ood, path, case in cases], features)

    def nearest_labels(self, found: FeatureSet, progress: gr.Progress) -> dict[Path, str]:
        """" · ID: <top ID label> · negative: <top negative label>" for each image `found` read, from its cached
        features (what the detector sees in it)."""
        from synood.data.classnames import display_names

        if not found.paths:
            return {}
        detector = self.holder.get(progress)
        unit = found.unit.to(detector.id_features.dtype)
        top_id = (unit @ detector.id_features.T).argmax(dim=-1).tolist()
        top_negative = (unit @ detector.negative_features.T).argmax(dim=-1).tolist()
        names = display_names(detector.id_names)
        return {path: f" · ID: {names[i]} · negative: {detector.negatives[j].word}"
                for path, i, j in zip(found.paths, top_id, top_negative)}

    @shows_user_errors
    def side_by_side(self, run_id: str, x: str | None, y: str | None, progress=gr.Progress()):
        """Two scores per image (ID green, OOD red), each with its 95 %-ID threshold, and a gallery of the images
        that cross a threshold: what the second score fixed and what it broke."""
        import numpy as np

        from synood.method.metrics import MetricError, id_threshold
        from synood.pipelines.hardest import id_set_of
        from synood.pipelines.report import title_of

        saved = self._current(run_id)
        if saved is None or not x or not y:
            return empty_figure("No scores to compare yet"), [], []
        self.check_scores(saved, x, y)
        id_set = id_set_of(saved)
        values = {key: {name: s.scores[key].double().numpy() for name, s in saved.sets.items()} for key in (x, y)}
        try:
            limits = {key: id_threshold(values[key][id_set], TPR, "mos") for key in (x, y)}
        except MetricError as exc:
            raise UserError(f"No threshold: {exc}") from None
        figure = go.Figure()
        crossed: list[tuple[Path, str]] = []
        for name, scored in saved.sets.items():
            ood = name != id_set
            a, b = values[x][name], values[y][name]
            right_a, right_b = (a < limits[x], b < limits[y]) if ood else (a >= limits[x], b >= limits[y])
            figure.add_scatter(x=a, y=b, mode="markers", name=set_title(name, ood),
                               marker=dict(size=7, opacity=0.7, color="#dc2626" if ood else "#16a34a",
                                           symbol=np.where(right_a != right_b, "diamond", "circle")),
                               text=[p.name for p in scored.paths] or None,
                               hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra>" + name + "</extra>")
            for i in np.flatnonzero(right_a != right_b)[:MAX_CASES].tolist():
                if i < len(scored.paths):
                    verdict = f"fixed by {title_of(y)}" if right_b[i] else f"broken by {title_of(y)}"
                    crossed.append((scored.paths[i], f"{set_title(name, ood)} · {verdict}"))
        figure.add_vline(x=limits[x], line_dash="dash", line_color="#374151")
        figure.add_hline(y=limits[y], line_dash="dash", line_color="#374151")
        figure.update_layout(template="plotly_white", height=420, margin=dict(l=50, r=20, t=60, b=40),
                             title=f"{title_of(x)} against {title_of(y)}: dashed lines keep 95 % of ID; "
                                   "diamonds changed sides",
                             xaxis_title=f"{title_of(x)} (higher = more ID)",
                             yaxis_title=f"{title_of(y)} (higher = more ID)", legend=dict(orientation="h", y=-0.2))
        return (figure, *self.gallery(crossed, self.features([path for path, _ in crossed], progress)))

    # 4. Reports, past runs, polling.
    @shows_user_errors
    def report(self, run_id: str):
        """The shown run's HTML report, offered for download."""
        return download(self.store, self.find(run_id).id)

    @shows_user_errors
    def run_rows(self) -> list[list]:
        """The runs table, from the run database."""
        return self.runs.rows()

    @shows_user_errors
    def latest(self) -> str:
        """The newest evaluation's id ("" when there is none)."""
        return self.runs.latest()

    @shows_user_errors
    def picked(self, event: gr.SelectData) -> str:
        """The run of the table row clicked."""
        return RunsList.picked(event)

    @shows_user_errors
    def poll(self, run_id: str, seen: tuple | None):
        """Every second: the status line and the runs table when the shown run changed, and a new view key (which
        redraws the views) when another run is shown or the shown one has just finished."""
        run_id = (run_id or "").strip()
        try:
            run = self.store.get(run_id)
        except RunError:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        key = (run.id, run.status, run.updated)
        if key == seen:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        redraw = seen is None or seen[0] != run.id or (seen[1] != run.status and run.finished)
        return describe(run), self.runs.rows(), key, f"{run.id}:{run.status}" if redraw else gr.skip()


def build(suite: Suite, config: Config, roots: DataRoots, inspector: Inspector | None, tabs: gr.Tabs,
          noise: NoiseTab | None = None) -> EvaluationTab:
    """Lay out the tab and wire its events to an EvaluationTab's handlers (returned); a gallery click opens the image
    in `inspector` (the Negative labels tab) and scores it there, or sends it to `noise` (Noise optimisation)."""
    from synood.data.benchmarks import BENCHMARKS
    from synood.method.scorers import SCORERS, choices, standard

    handlers = EvaluationTab(suite, config, roots)
    with gr.Tab("Evaluation", id="evaluation"):
        gr.Markdown(INTRO)
        seen = gr.State(None)
        cases, crossed = gr.State([]), gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio(SOURCES, value="folders", label="Evaluate", elem_id="evaluation-source")
                with gr.Group(visible=True) as folders_group:
                    id_folder = gr.Textbox(label="ID folder", elem_id="evaluation-id",
                                           placeholder="/path/to/imagenet/val")
                    ood_text = gr.Textbox(label="OOD folders, one per line: NAME=DIR or DIR", lines=3,
                                          elem_id="evaluation-ood", placeholder="textures=/path/to/dtd")
                with gr.Group(visible=False) as benchmark_group:
                    protocol = gr.Dropdown([(b.title, name) for name, b in BENCHMARKS.items()], value="mos",
                                           label="Protocol", elem_id="evaluation-protocol")
                    data_root = gr.Textbox(label="Data root (the folder holding its sets)",
                                           elem_id="evaluation-data-root")
                with gr.Group(visible=False) as generation_group:
                    generation = gr.Textbox(label="Generation folder or its manifest.jsonl",
                                            elem_id="evaluation-generation")
                scores = gr.CheckboxGroup([(SCORERS[n].title, n) for n in choices()], value=standard(),
                                          label="Scores (CSP mines its own pool on first use: minutes)",
                                          elem_id="evaluation-scores")
                with gr.Row():
                    detector_run = gr.Dropdown([NO_DETECTOR], value=NO_DETECTOR, allow_custom_value=True,
                                               label="Fine-tuned detector (a fine-tuning run): adds SynOOD",
                                               elem_id="evaluation-detector", scale=3)
                    convention = gr.Dropdown(CONVENTION_CHOICES, value="mos", label="Metric convention",
                                             elem_id="evaluation-convention", scale=2)
                with gr.Row():
                    bootstrap = gr.Number(0, precision=0, minimum=0, maximum=MAX_BOOTSTRAP,
                                          label="Bootstrap resamples (0: no intervals)", elem_id="evaluation-bootstrap")
                    seed = gr.Number(0, precision=0, minimum=0, maximum=2**31 - 1, label="Bootstrap seed",
                                     elem_id="evaluation-seed")
                with gr.Row():
                    run_button = gr.Button("Run", variant="primary", elem_id="evaluation-run", min_width=90)
                    stop_button = gr.Button("Stop", variant="stop", elem_id="evaluation-stop", min_width=90)
                    resume_button = gr.Button("Resume", elem_id="evaluation-resume", min_width=90)  # three in a row
            with gr.Column(scale=2):
                run_box = gr.Textbox(handlers.latest, label="Run shown (pick one in the table, or paste its id and "
                                                            "press Enter)", elem_id="evaluation-run-id")
                status = gr.Markdown(elem_id="evaluation-status")
                with gr.Row():
                    report_button = gr.Button("Make an HTML report of this run", size="sm",
                                              elem_id="evaluation-report")
                    download = gr.DownloadButton(visible=False, size="sm", elem_id="evaluation-download")
                gr.Markdown(standin_note(suite, "encoder", "classifier"), elem_id="evaluation-standin",
                            elem_classes=["standin-note"])
                table = gr.HTML(elem_id="evaluation-table")
                scorer = gr.Dropdown([], label="Score", elem_id="evaluation-scorer", allow_custom_value=True)
                histogram = gr.Plot(empty_figure("No scores to show yet"), label="Scores per set",
                                    elem_id="evaluation-histogram")
        gr.Markdown("### Hardest cases")
        action = gr.Radio(CLICK_ACTIONS, value="inspect", label="Clicking an image below",
                          elem_id="evaluation-click-action")
        with gr.Row():
            only = gr.Dropdown([], label="OOD set", elem_id="evaluation-hardest-set", scale=2, allow_custom_value=True)
            count = gr.Slider(1, MAX_CASES, value=8, step=1, label="Cases of each kind", elem_id="evaluation-count",
                              scale=2)
        gallery = gr.Gallery(label="OOD images scored most in-distribution, then ID images scored least", columns=6,
                             height="auto", object_fit="contain", allow_preview=False, elem_id="evaluation-hardest")
        gr.Markdown("### Two scores side by side")
        with gr.Row():
            x_score = gr.Dropdown([], label="Across", elem_id="evaluation-x", allow_custom_value=True)
            y_score = gr.Dropdown([], label="Up", elem_id="evaluation-y", allow_custom_value=True)
        scatter = gr.Plot(empty_figure("No scores to compare yet"), elem_id="evaluation-scatter")
        crossing = gr.Gallery(label="Images on the other side of a threshold in the second score (click to inspect)",
                              columns=6, height="auto", object_fit="contain", allow_preview=False,
                              elem_id="evaluation-crossed")
        with gr.Row():
            gr.Markdown("### Evaluation runs (click a row to show it)")
            refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="evaluation-refresh")
        table_runs = gr.Dataframe(handlers.run_rows, headers=RUN_HEADERS, interactive=False, wrap=True,
                                  max_height=320, elem_id="evaluation-runs")
        timer = gr.Timer(1.0)

        view_key = gr.Textbox(visible=False)  # changes when the views must be redrawn

        groups = {"folders": folders_group, "benchmark": benchmark_group, "generation": generation_group}
        source.change(lambda chosen: [gr.update(visible=name == chosen) for name in groups], inputs=source,
                      outputs=list(groups.values()), api_visibility="private", show_progress="hidden")
        detector_run.focus(lambda: gr.update(choices=[NO_DETECTOR, *(r.id for r in handlers.store.list("finetune")
                                                                     if r.artifacts.get("detector"))]),
                           outputs=detector_run, api_visibility="private", show_progress="hidden")
        run_button.click(handlers.launch, inputs=[source, id_folder, ood_text, protocol, data_root, generation, scores,
                                                  detector_run, convention, bootstrap, seed],
                         outputs=[run_box, table_runs], api_name="evaluation_run", show_progress_on=status,
                         concurrency_limit=1, concurrency_id="evaluation-launch")
        resume_button.click(handlers.resume, inputs=run_box, outputs=[status, table_runs], api_name="evaluation_resume",
                            show_progress_on=status, concurrency_limit=1, concurrency_id="evaluation-launch")
        stop_button.click(handlers.stop, inputs=run_box, outputs=status, api_name="evaluation_stop")
        views: dict[str, Any] = dict(concurrency_limit=1, concurrency_id="evaluation-views", show_progress="hidden")
        gr.on([run_box.submit, view_key.change], handlers.view, inputs=[run_box, count],
              outputs=[status, table, scorer, only, x_score, y_score, histogram, gallery, cases, scatter, crossing,
                       crossed], api_name="evaluation_show", trigger_mode="always_last", **views)
        scorer.input(handlers.histogram, inputs=[run_box, scorer], outputs=histogram, api_name="evaluation_histogram",
                     **views)
        gr.on([scorer.input, only.input, count.release], handlers.hardest, inputs=[run_box, scorer, only, count],
              outputs=[gallery, cases], api_name="evaluation_hardest", **views)
        gr.on([x_score.input, y_score.input], handlers.side_by_side, inputs=[run_box, x_score, y_score],
              outputs=[scatter, crossing, crossed], api_name="evaluation_side_by_side", **views)
        table_runs.select(handlers.picked, outputs=run_box, api_visibility="private")
        report_button.click(handlers.report, inputs=run_box, outputs=download, api_name="evaluation_report")
        run_box.change(lambda: gr.DownloadButton(visible=False), outputs=download, api_visibility="private",
                       show_progress="hidden")
        refresh.click(handlers.run_rows, outputs=table_runs, api_name="evaluation_runs")
        timer.tick(handlers.poll, inputs=[run_box, seen], outputs=[status, table_runs, seen, view_key],
                   api_visibility="private", show_progress="hidden")
        if inspector is not None and noise is not None:
            for shown_gallery, items in ((gallery, cases), (crossing, crossed)):
                wire(shown_gallery, items, action, inspector, noise, tabs)
    handlers.run_box = run_box
    return handlers

