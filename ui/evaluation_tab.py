"""Evaluation tab: the paper's table for folders, a benchmark protocol or a generation, run in the background and
recorded; per-set score histograms with the 95 %-ID threshold, the hardest cases, two scores side by side, and
every past evaluation to reopen. Every image it opens lies under the app's data roots."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import plotly.graph_objects as go

from synood.config import Config
from synood.errors import UserError
from synood.models import Suite
from synood.records import runs
from synood.records.runs import Run, RunError

from .access import DataRoots, confined_folder, confined_generation
from .detector import DetectorHolder
from .errors import shows_user_errors
from .jobs import JobRunner
from .neglabel_tab import Inspector
from .noise_tab import NoiseTab
from .notes import standin_note
from .opening import CLICK_ACTIONS, Shown, wire
from .reports import download, link

if TYPE_CHECKING:  # torch loads on first use: the app must start in seconds
    from synood.pipelines.evaluation import Saved

INTRO = (
    "The paper's table for your images: pick an **ID** set and **OOD** sets (folders, a benchmark protocol such as "
    "the paper's Table 1, or a generation: its sources against its synthetic images), the scores to compare and, "
    "optionally, a fine-tuned detector. The evaluation runs in the background (Stop stops it; a reload or a restart "
    "keeps it listed below) and is recorded with every image's scores, so that each past run reopens here: the "
    "table, each score's **histograms** with the threshold that keeps 95 % of the ID images, the **hardest cases** "
    "(the OOD images a score found most in-distribution, the ID images it found least) and **two scores side by "
    "side**. Click an image to inspect it in the Negative labels tab, or to make a boundary sample of it."
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


def runs_table(store: runs.RunStore) -> list[list]:
    """One row per evaluate run, newest first."""
    from synood.records.runs import EvaluateRecord

    rows = []
    for run in store.list(kind="evaluate"):
        try:
            record = EvaluateRecord.of(run)
        except (RunError, KeyError, TypeError):
            continue  # a row this version cannot read: the CLI's `synood runs` still lists it
        best = max((m.get("mos", next(iter(m.values()), {})).get("auroc", float("nan"))
                    for m in record.averages.values() if m), default=None)
        rows.append([run.id, run.status, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created)),
                     record.id_set, ", ".join(n for n in record.sets if n != record.id_set), ", ".join(record.methods),
                     "" if best is None else f"{best:.2f}"])
    return rows


def describe(run: Run) -> str:
    """An evaluate run's status line and where it stands, as Markdown."""
    line = f"**Run {run.id}** · **{run.status}** · {link(run.id)}"
    if run.status in ("queued", "running") and run.message:
        line += f" · {run.message}"
    elif run.message:
        line += f"\n\n{run.message}"
    if run.status == "interrupted":
        line += "\n\nThe app stopped while it ran: press **Run** again (the images encoded so far are cached)."
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
        self.store = runs.store_for(config.paths.home)
        self.runner = JobRunner(self.store, kind="evaluate")
        self.holder = DetectorHolder.shared(suite, config)
        self._saved: dict[str, Saved] = {}
        self.run_box: gr.Textbox | None = None  # once laid out: what a "?run=ID" link sets

    # 1. Choosing the sets (every file under the data roots) and the scores.
    def sets_of(self, source: str, id_folder: str, ood_text: str, protocol: str, data_root: str,
                generation: str) -> tuple[str, dict[str, list[Path]], dict[str, str], dict]:
        """(ID set name, each set's images, each set's folder, what the record keeps of the source)."""
        from synood.data import benchmarks
        from synood.pipelines import evaluation

        if source == "benchmark":
            if not (data_root or "").strip():
                raise UserError(f"Give the data root holding the {protocol} sets (see `synood data check`).")
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
        if source == "generation":
            if not (generation or "").strip():
                raise UserError("Give a generation folder or its manifest.jsonl first.")
            path = confined_generation(self.roots, generation)
            found = evaluation.generation_sets(path)
            return "sources", found, {name: path for name in found}, {"generation": path}
        if not (id_folder or "").strip():
            raise UserError("Give an ID folder first.")
        folders = {"ID": confined_folder(self.roots, id_folder),
                   **{name: confined_folder(self.roots, folder) for name, folder in ood_folders(ood_text).items()}}
        return "ID", {name: evaluation.folder_images(name, folder) for name, folder in folders.items()}, folders, {}

    def scorers_of(self, chosen: list[str], detector_run: str):
        """The registry's scorers picked (plus the tuned one of a fine-tuning run) and that run's detector file."""
        from synood.method.scorers import build, choices
        from synood.records.checkpoint import load_detector

        methods = [name for name in choices() if name in (chosen or [])]
        tuned, detector_file = None, None
        if detector_run and detector_run != NO_DETECTOR:
            run = self.store.get(detector_run)
            detector_file = run.artifacts.get("detector")
            if run.kind != "finetune" or not detector_file:
                raise UserError(f"Run {run.id} has no fine-tuned detector: pick a completed fine-tuning run.")
            tuned = load_detector(detector_file)
            methods.append("synood")
        if not methods:
            raise UserError("Pick at least one score.")
        return {m: build(m, tuned, self.config.finetune.combination) for m in methods}, tuned, detector_file

    # 2. Running one in the background.
    @shows_user_errors
    def launch(self, source: str, id_folder: str, ood_text: str, protocol: str, data_root: str, generation: str,
               chosen: list[str], detector_run: str, convention: str, bootstrap: float | None, seed: float | None,
               progress=gr.Progress()):
        """Queue an evaluation of the chosen sets and scores: its id, then the shown run and the runs table."""
        from synood.method.metrics import CONVENTIONS
        from synood.pipelines import evaluation
        from synood.records.runs import EvaluateRecord

        resamples, seed = int(bootstrap or 0), int(seed or 0)
        if not 0 <= resamples <= MAX_BOOTSTRAP:
            raise UserError(f"Bootstrap resamples must be between 0 and {MAX_BOOTSTRAP:,}.")
        conventions = list(CONVENTIONS) if convention == "all" else [convention]
        id_set, found, folders, source_context = self.sets_of(source, id_folder, ood_text, protocol, data_root,
                                                              generation)
        scorers, tuned, detector_file = self.scorers_of(chosen, detector_run)
        detector = self.holder.get(progress)
        if tuned is not None:
            tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
        groups = source_context.pop("groups", None)
        context = {"suite": self.suite.name, "checkpoint": detector_file, "source": source, **source_context,
                   **({"bootstrap": {"resamples": resamples, "seed": seed}} if resamples else {})}
        run = self.store.create("evaluate", self.config.to_dict("models", "neglabel", "finetune"),
                                EvaluateRecord(folders, id_set, list(scorers), conventions, context).inputs(),
                                status="queued")
        home, suite = self.config.paths.home, self.suite.name

        def work(stop) -> None:
            def evaluate(progress):
                pools = {s.pool: detector.pool(s.pool, progress) for s in scorers.values()}
                result = evaluation.evaluate(found, scorers, detector.encoder, detector.classifier, detector.inputs(),
                                             conventions, id_set, folders, progress=progress, bootstrap=resamples,
                                             seed=seed, pools=pools, groups=groups)
                result.suite = suite
                if tuned is not None:
                    result.checkpoint = {"run": tuned.meta.get("run"), "combination": self.config.finetune.combination}
                return result
            evaluation.execute(self.store, run.id, home, evaluate, stop=stop)

        try:
            self.runner.submit(run.id, work)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return run.id, runs_table(self.store)

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
                *self.side_by_side(run_id, x, y))

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

    def shown(self, path: Path, caption: str) -> tuple[Any, Shown]:
        """A gallery item (a thumbnail, or a placeholder for a file outside the roots or unreadable) and its record."""
        from synood.data.images import ImageError, load_image
        from ui.thumbnails import placeholder

        if not self.roots.contains(path):
            return placeholder("outside the data roots", (160, 160)), Shown("", caption)
        try:
            image = load_image(path)
        except ImageError:
            return placeholder("cannot be read", (160, 160)), Shown("", caption)
        image.thumbnail((200, 200))
        return image, Shown(str(path), caption)

    @shows_user_errors
    def hardest(self, run_id: str, scorer: str | None, only: str | None, count: float, progress=gr.Progress()):
        """The gallery of the hardest cases of one score (OOD scored most ID, then ID scored least) and its items."""
        from synood.pipelines.hardest import hardest

        saved = self._current(run_id)
        if saved is None or not scorer:
            return [], []
        found = hardest(saved, scorer, int(count), [only] if only else None)
        cases = [(ood, case) for ood, group in ((True, found.ood), (False, found.id)) for case in group if case.path]
        labels = self.nearest_labels([case.path for _, case in cases if case.path], progress)
        items = [self.shown(case.path, f"{set_title(case.set, ood)} · score {case.score:.6g}"
                            + labels.get(case.path, "")) for ood, case in cases if case.path]
        return [(image, shown.caption) for image, shown in items], [shown for _, shown in items]

    def nearest_labels(self, paths: list[Path], progress: gr.Progress) -> dict[Path, str]:
        """" · ID: <top ID label> · negative: <top negative label>" for each readable image under the data roots,
        from its cached features (what the detector sees in it)."""
        from synood.data.classnames import display_names
        from synood.data.features import image_features

        detector = self.holder.get(progress)
        found = image_features(detector.encoder, [p for p in paths if self.roots.contains(p)])
        if not found.paths:
            return {}
        unit = found.unit.to(detector.id_features.dtype)
        top_id = (unit @ detector.id_features.T).argmax(dim=-1).tolist()
        top_negative = (unit @ detector.negative_features.T).argmax(dim=-1).tolist()
        names = display_names(detector.id_names)
        return {path: f" · ID: {names[i]} · negative: {detector.negatives[j].word}"
                for path, i, j in zip(found.paths, top_id, top_negative)}

    @shows_user_errors
    def side_by_side(self, run_id: str, x: str | None, y: str | None):
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
        crossed = []
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
                    crossed.append(self.shown(scored.paths[i], f"{set_title(name, ood)} · {verdict}"))
        figure.add_vline(x=limits[x], line_dash="dash", line_color="#374151")
        figure.add_hline(y=limits[y], line_dash="dash", line_color="#374151")
        figure.update_layout(template="plotly_white", height=420, margin=dict(l=50, r=20, t=60, b=40),
                             title=f"{title_of(x)} against {title_of(y)}: dashed lines keep 95 % of ID; "
                                   "diamonds changed sides",
                             xaxis_title=f"{title_of(x)} (higher = more ID)",
                             yaxis_title=f"{title_of(y)} (higher = more ID)", legend=dict(orientation="h", y=-0.2))
        return figure, [(image, shown.caption) for image, shown in crossed], [shown for _, shown in crossed]

    # 4. Reports, past runs, polling.
    @shows_user_errors
    def report(self, run_id: str):
        """The shown run's HTML report, offered for download."""
        return download(self.store, self.find(run_id).id)

    @shows_user_errors
    def run_rows(self) -> list[list]:
        return runs_table(self.store)

    @shows_user_errors
    def latest(self) -> str:
        found = self.store.list(kind="evaluate", limit=1)
        return found[0].id if found else ""

    @shows_user_errors
    def picked(self, event: gr.SelectData) -> str:
        return event.row_value[0]

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
        return describe(run), runs_table(self.store), key, f"{run.id}:{run.status}" if redraw else gr.skip()


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
                    run_button = gr.Button("Run", variant="primary", elem_id="evaluation-run")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="evaluation-stop")
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

