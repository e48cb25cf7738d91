"""Fine-tuning tab: train stages 2 and 3 on a generation in the background, watch the curves, compare before/after.
The generation (and every image its manifest names) and the before/after folders must lie under the data roots."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from synood.data.manifest import PairsError, load_manifest
from synood.errors import UserError
from synood.records import runs
from ui.access import DataRoots, confined_folder, confined_generation
from synood.config import Combination, Config, ConfigError, Embedding, Schedule, labelled
from synood.data.images import find_images
from synood.models import ImageTextEncoder, Suite
from synood.records.runs import Run, RunError

from .detector import DetectorHolder
from .errors import shows_user_errors
from .jobs import JobRunner
from .reports import download, link
from .runs_list import RunsList

if TYPE_CHECKING:  # torch loads on first use: the app must start in seconds
    from synood.pipelines.detect import Detector
    from synood.pipelines.evaluation import Evaluation
    from synood.pipelines.training import TrainingData

INTRO = (
    "SynOOD's stages 2 and 3 train on a generation from `synood generate`: a small **projection** after the frozen "
    "image encoder learns to put each ID image on its class and each synthetic image on its paired negative label, "
    "then the **negative labels'** text features move toward their synthetic images. Per epoch the loss should fall "
    "and the accuracy (the share of samples put on their own label) rise; runs go on in the background, one at a "
    "time, and stay listed below after a reload or a restart. **Before / after** scores an ID and an OOD folder with "
    "plain NegLabel (and every other registered score of the frozen models) and with a run's tuned detector: a "
    "higher AUROC and a lower FPR95 after means the near-boundary images helped."
)
MODE_CHOICES = [("separate: projection, then negatives (paper's best)", "separate"),
                ("joint: both at once, for the projection's epochs", "joint")]
COMBINATION_CHOICES = labelled("finetune.combination", {
    "both": "both: projected images, tuned negatives", "projection": "projection only",
    "negatives": "tuned negatives only", "none": "none: plain NegLabel"})
RUN_HEADERS = ["Run", "Status", "Created", "Generation", "Synthetic", "ID", "Negatives used", "Loss", "Accuracy",
               "Detector"]
# each header's longest word fits
RUN_WIDTHS: list[str | int] = ["13%", "8%", "11%", "15%", "9%", "4%", "9%", "6%", "8%", "17%"]
METRIC_HEADERS = ["Method", "Metrics", "AUROC %", "FPR95 %", "AUPR-In %", "AUPR-Out %"]
CONVENTION_TITLES = {"mos": "MOS (paper)", "openood": "OpenOOD", "neglabel": "NegLabel code"}  # metrics.CONVENTIONS
INPUT_CHOICES = labelled("projection.input", {"raw": "raw embedding (authors' code)", "unit": "unit-norm"})
SCHEDULE_CHOICES = labelled("projection.schedule", {"epoch": "once per epoch (authors' code)", "batch": "every batch"})
CONVENTIONS_NOTE = ("**Conventions** where the paper is silent (defaults follow the authors' code; docs/method.md "
                    "explains each). Stage 3's learning rate: the paper's 2e-3 by default, the code's 2e-2 is the "
                    "alternative; on raw text embeddings a step turns a label by about lr / |t|².")
LR_RANGE = (1e-6, 10.0)  # the boxes' limits (Gradio refuses values outside them)
MAX_EPOCHS = 100_000  # bench/load.py's long job trains 100,000 epochs at batch 1
MAX_BATCH = 65536
MAX_SYNTHETIC = 10_000_000
MAX_SEED = 2**31 - 1
STAGE_COLORS = {"projection": "#6366f1", "negatives": "#dc2626", "joint": "#16a34a"}


def number(value: float | None, name: str) -> int:
    """`value` as an int; a UserError names the input when it is empty or not whole. Its range is the config's to
    check (hyperparameters)."""
    if value is None:
        raise UserError(f"{name} is empty.")
    if value != int(value):
        raise UserError(f"{name} must be a whole number, not {value:g}.")
    return int(value)


def rate(value: float | None, name: str) -> float:
    """`value` as a float; a UserError names the input when it is empty. Its range is the config's to check."""
    if value is None:
        raise UserError(f"{name} is empty.")
    return float(value)


@shows_user_errors
def hyperparameters(base: Config, projection_lr: float | None, projection_epochs: float | None,
                    projection_batch: float | None, negatives_lr: float | None, negatives_epochs: float | None,
                    negatives_batch: float | None, synthetic: float | None, mode: str, use_projection: bool,
                    combination: Combination, projection_seed: float | None, negatives_seed: float | None,
                    subset_seed: float | None, projection_input: Embedding | None = None,
                    negatives_parameter: Embedding | None = None, schedule: Schedule | None = None) -> Config:
    """The app's config with the tab's values in the projection, negtune and finetune sections (a convention
    left out, as an API caller of an older version would, keeps the app's). The config checks every value: a bad
    one is a toast of one line naming its key and what is allowed."""
    projection = dataclasses.replace(
        base.projection, lr=rate(projection_lr, "Projection learning rate"),
        epochs=number(projection_epochs, "Projection epochs"),
        batch_size=number(projection_batch, "Projection batch size"),
        seed=number(projection_seed, "Projection seed"),
        input=base.projection.input if projection_input is None else projection_input,
        schedule=base.projection.schedule if schedule is None else schedule)
    negtune = dataclasses.replace(
        base.negtune, lr=rate(negatives_lr, "Negatives learning rate"),
        epochs=number(negatives_epochs, "Negatives epochs"),
        batch_size=number(negatives_batch, "Negatives batch size"),
        seed=number(negatives_seed, "Negatives seed"), joint=mode == "joint",
        use_projection=bool(use_projection),
        parameter=base.negtune.parameter if negatives_parameter is None else negatives_parameter,
        schedule=base.negtune.schedule if schedule is None else schedule)
    finetune = dataclasses.replace(
        base.finetune, synthetic_images=number(synthetic, "Synthetic images m") if synthetic else None,
        seed=number(subset_seed, "Subset seed"), combination=combination)
    return dataclasses.replace(base, projection=projection, negtune=negtune, finetune=finetune)


def stored_config(run: Run, home: str) -> Config:
    """The config a run was trained with (its stored sections), with this app's home folder."""
    try:
        return runs.config_of(run, home)
    except ConfigError as exc:
        raise UserError(f"Run {run.id}: its stored configuration does not fit this version ({exc}).") from None


def stages(run: Run) -> list[tuple[str, int]]:
    """The stages a run trains and their epochs, from its stored config (empty when that no longer reads)."""
    from synood.pipelines import training

    try:
        return training.plan(runs.config_of(run, ""))
    except ConfigError:
        return []


def run_columns(run: Run) -> list:
    """A fine-tuning run's row in the runs table after its id, status and creation time."""
    loss, accuracy = run.summary.get("loss"), run.summary.get("accuracy")
    return [run.inputs.get("generation", ""), run.inputs.get("synthetic", ""), run.inputs.get("id", ""),
            run.inputs.get("negatives_used", ""), "" if loss is None else f"{loss:.4f}",
            "" if accuracy is None else f"{100 * accuracy:.1f} %", run.artifacts.get("detector", "")]


def curves(epochs: list[dict]) -> go.Figure:
    """Loss and accuracy per epoch, one line per stage; epochs are numbered through the stages in order."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"),
                           horizontal_spacing=0.12)
    for stage, color in STAGE_COLORS.items():
        points = [(i, e) for i, e in enumerate(epochs, 1) if e["stage"] == stage]
        if not points:
            continue
        x, epoch = [i for i, _ in points], [e["epoch"] for _, e in points]
        for col, key in ((1, "loss"), (2, "accuracy")):
            figure.add_scatter(x=x, y=[e[key] for _, e in points], customdata=epoch, name=stage, legendgroup=stage,
                               showlegend=col == 1, mode="lines+markers", line_color=color, row=1, col=col,
                               hovertemplate=f"{stage} epoch %{{customdata}}: {key} %{{y:.4f}}<extra></extra>")
    figure.update_layout(title="Training: loss and accuracy per epoch", height=320,
                         margin=dict(l=10, r=10, t=60, b=30), legend=dict(orientation="h", y=-0.25))
    figure.update_xaxes(title="epoch (stages in order)", rangemode="tozero", showline=True, linecolor="#9ca3af")
    figure.update_yaxes(showline=True, linecolor="#9ca3af")
    figure.update_yaxes(title="loss", rangemode="tozero", row=1, col=1)
    figure.update_yaxes(title="share on its own label", range=[0, 1.02], row=1, col=2)
    if not epochs:  # plotly draws no axes for a panel without a trace: an empty one each, and a note
        for col in (1, 2):
            figure.add_scatter(x=[], y=[], showlegend=False, hoverinfo="skip", row=1, col=col)
            figure.add_annotation(text="no epochs yet", showarrow=False, font=dict(color="#6b7280", size=14),
                                  x=2.5, y=0.5, row=1, col=col)
        figure.update_xaxes(range=[0, 5])
        figure.update_yaxes(range=[0, 1], row=1, col=1)
    return figure


def describe(run: Run, epochs: list[dict]) -> str:
    """The run's status, where it is in its plan, its last epoch and its data, as Markdown."""
    plan = stages(run)
    total = sum(count for _, count in plan)
    line = f"**Run {run.id}** · **{run.status}** · {len(epochs)} of {total} epochs ("
    line += ", then ".join(f"{stage} {count}" for stage, count in plan) + ")"
    if epochs:
        last = epochs[-1]
        line += (f" · last: {last['stage']} epoch {last['epoch']}, loss **{last['loss']:.4f}**, accuracy "
                 f"**{100 * last['accuracy']:.1f} %**")
    from synood.pipelines.training import conventions

    try:
        line += f"\n\nConventions: {conventions(runs.config_of(run, ''))}"
    except ConfigError:
        pass  # a record of another version: stages() already shows it has no plan
    inputs = run.inputs
    line += (f"\n\nData: `{inputs.get('generation')}` · {inputs.get('synthetic')} synthetic and {inputs.get('id')} ID "
             f"images · {inputs.get('negatives_used')} of {inputs.get('negatives_count')} negative labels tuned")
    if run.artifacts.get("detector"):
        line += f" · detector: `{run.artifacts['detector']}`"
    if run.message:
        line += f"\n\n{run.message}"
    return line + f"\n\n{link(run.id)}"


def metrics_rows(result: Evaluation) -> list[list]:
    """AUROC, FPR95 and AUPR in %, one row per score and convention: plain NegLabel before and the tuned detector
    after first (the comparison that matters), then every other registered score of the frozen models."""
    from synood.method.scorers import SCORERS

    after = [name for name in result.methods if SCORERS[name].kind == "trained"]
    before = [name for name in result.methods if name not in after]
    return [[f"{result.methods[method].title} ({'after' if method in after else 'before'})",
             CONVENTION_TITLES[convention], *(round(getattr(values, k), 2) for k in ("auroc", "fpr95", "aupr_in",
                                                                                    "aupr_out"))]
            for method in [*before[:1], *after, *before[1:]]
            for convention, values in result.methods[method].average.items()]


def score_histograms(result: Evaluation) -> go.Figure:
    """S(x) of the ID and the OOD images, before and after tuning: the less they overlap, the better."""
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True,
                           subplot_titles=("NegLabel (before)", "SynOOD (after)"))
    for col, method in enumerate(("neglabel", "synood"), 1):
        for split, color, name in (("ID", "#16a34a", "ID"), ("OOD", "#dc2626", "OOD")):
            figure.add_histogram(x=result.sets[split].scores[method].tolist(), name=name, legendgroup=split, showlegend=col == 1,
                                 marker_color=color, opacity=0.6, xbins=dict(start=0, end=1.0001, size=0.05),
                                 hovertemplate=f"{name} %{{x}}: %{{y}} images<extra></extra>", row=1, col=col)
    figure.update_layout(barmode="overlay", title="Scores S(x) of the ID and OOD images", height=320,
                         margin=dict(l=10, r=10, t=60, b=30), legend=dict(orientation="h", y=-0.25))
    figure.update_xaxes(title="S(x) (higher = looks ID)", range=[-0.02, 1.02])
    return figure


def overlap_warnings(trained: list[Path], folders: dict[str, str]) -> list[str]:
    """A warning per evaluation folder (name -> path) that is, lies inside or holds a folder of the `trained` images:
    its scores would be measured on the training data, or next to it."""
    images = {path.resolve() for path in trained}
    homes = sorted({path.parent for path in images})
    found = []
    for name, text in folders.items():
        folder = Path(text).resolve()
        for home in homes:
            relation = ("is" if home == folder else "holds" if folder in home.parents
                        else "lies inside" if home in folder.parents else "")
            if relation:
                used = sum(image.resolve() in images for image in find_images(folder))
                found.append(f"the {name} folder `{folder}` {relation} the training folder `{home}` "
                             f"({used:,} of its images were trained on)")
                break
    return found


def training_overlap(run: Run, folders: dict[str, str]) -> list[str]:
    """overlap_warnings for the images `run` trained on (its generation's synthetic images and their sources)."""
    try:
        manifest = load_manifest(run.inputs["generation"])
    except PairsError as exc:
        return [f"its generation could not be read to check ({exc})"]
    return overlap_warnings([image for pair in manifest.pairs for image in (pair.image, pair.source)], folders)


def warn_skipped(problems: list[str]) -> None:
    """A toast naming the first unreadable image files: they were skipped, not fatal."""
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        gr.Warning(f"{len(problems)} image files could not be read and were skipped: {shown}")


class FinetuneTab:
    """The tab's handlers, callable without a page: the suite, the app's config and data roots, the run database and
    the background job runner (jobs outlive the page that launched them), and the shared detector."""

    def __init__(self, suite: Suite, config: Config, roots: DataRoots):
        self.suite, self.config, self.roots = suite, config, roots
        self.store = runs.store_for(config.paths.home)
        self.runner = JobRunner(self.store)
        self.runs = RunsList(self.store, "finetune", run_columns)
        self.holder = DetectorHolder.shared(suite, config)
        self.run_box: gr.Textbox | None = None  # once laid out: what a "?run=ID" link sets

    def tools(self, progress: gr.Progress) -> tuple[Detector, ImageTextEncoder]:
        """The shared detector and the suite's encoder, loaded with their stages named in `progress`."""
        return self.holder.get(progress), self.suite.get("encoder")

    @staticmethod
    def encoding(progress: gr.Progress):
        """A progress callback for encoding images, in `progress`."""
        return lambda done, total: progress(done / max(total, 1), desc="Encoding images (cached after the first time)")

    def find(self, run_id: str) -> Run:
        """The fine-tuning run `run_id`; a UserError when there is none or it is another kind of run."""
        if not (run_id or "").strip():
            raise UserError("Launch a run or pick one in the table first.")
        run = self.store.get(run_id.strip())
        if run.kind != "finetune":
            raise UserError(f"Run {run.id} is a {run.kind} run, not a fine-tuning run.")
        return run

    def data_for(self, generation: str, run_config: Config, progress: gr.Progress) -> TrainingData:
        """The generation's training features (skipped unreadable images named in a warning)."""
        from synood.pipelines import training

        detector, _ = self.tools(progress)
        data = training.training_data(generation, detector, run_config, self.encoding(progress))
        warn_skipped(data.info["skipped"])
        return data

    def submit(self, run_id: str, data: TrainingData, run_config: Config) -> None:
        """Queue the run's training on the background runner."""
        from synood.pipelines import training

        store = self.store

        def work(stop) -> None:
            training.execute(store, store.get(run_id), data, run_config, stop=stop)

        try:
            self.runner.submit(run_id, work)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    @shows_user_errors
    def run_rows(self) -> list[list]:
        """The runs table, from the run database."""
        return self.runs.rows()

    @shows_user_errors
    def latest(self) -> str:
        """The newest fine-tuning run's id ("" when there is none)."""
        return self.runs.latest()

    @shows_user_errors
    def show(self, run_id: str) -> tuple[str, go.Figure]:
        """The run's status text and curves (a line of text, not an error, when there is no such run)."""
        run_id = (run_id or "").strip()
        if not run_id:
            return "Launch a run or pick one in the table.", curves([])
        try:
            run = self.store.get(run_id)
        except RunError as exc:
            return str(exc), curves([])
        if run.kind != "finetune":
            return f"Run {run.id} is a {run.kind} run, not a fine-tuning run.", curves([])
        epochs = self.store.epochs(run.id)
        return describe(run, epochs), curves(epochs)

    @shows_user_errors
    def poll(self, run_id: str, seen_key: tuple | None, seen_rows: list | None):
        """Every second: redraw the shown run and the table only when the database says they changed."""
        run_id = (run_id or "").strip()
        key: tuple[object, ...]
        try:
            run = self.store.get(run_id)
            key = (run.id, run.status, run.updated)
        except RunError:
            key = (run_id, "missing")
        rows = self.runs.rows()
        view = self.show(run_id) if key != seen_key else (gr.skip(), gr.skip())
        return *view, rows if rows != seen_rows else gr.skip(), key, rows

    @shows_user_errors
    def launch(self, path: str, *values, progress=gr.Progress()):
        """Queue a run on the generation with the tab's values: its id, status, curves and the runs table."""
        if not (path or "").strip():
            raise UserError("Give a generation folder or its manifest.jsonl first.")
        from synood.pipelines import training

        run_config = hyperparameters(self.config, *values)
        if not training.plan(run_config):
            raise UserError("Nothing to train: give the projection (or, in separate mode, the negatives) at least "
                            "one epoch.")
        generation = confined_generation(self.roots, path)
        data = self.data_for(generation, run_config, progress)
        run = training.start(self.store, run_config, generation, data, self.suite.name, status="queued")
        self.submit(run.id, data, run_config)
        return run.id, *self.show(run.id), self.runs.rows()

    @shows_user_errors
    def resume(self, run_id: str, progress=gr.Progress()):
        """Queue a stopped, failed or interrupted run again on its own data and settings."""
        from synood.pipelines import training

        run = self.find(run_id)
        run_config = training.resume_config(run, self.config.paths.home)
        data = self.data_for(confined_generation(self.roots, run.inputs["generation"]), run_config, progress)
        training.check_data(run, data)
        self.submit(run.id, data, run_config)
        return self.show(run.id)

    @shows_user_errors
    def stop(self, run_id: str):
        """Ask the run to stop after its current batch (a warning when it is not running here)."""
        run = self.find(run_id)
        if not self.runner.stop(run.id):
            gr.Warning(f"Run {run.id} is not running in this app (status: {run.status}).")
        return self.show(run.id)

    @shows_user_errors
    def report(self, run_id: str):
        """The shown run's HTML report, offered for download."""
        return download(self.store, self.find(run_id).id)

    @shows_user_errors
    def picked(self, event: gr.SelectData):
        """The run of the table row clicked, shown."""
        run_id = RunsList.picked(event)
        return run_id, *self.show(run_id)

    @shows_user_errors
    def evaluate(self, run_id: str, id_folder: str, ood_folder: str, progress=gr.Progress()):
        """Before / after: every standard score of the frozen models and the run's tuned detector on an ID and an
        OOD folder: the metrics table, the score histograms and a note (recorded as an evaluate run)."""
        from synood.records import checkpoint
        from synood.pipelines import evaluation, training

        run = self.find(run_id)
        if run.status != "completed" or not run.artifacts.get("detector"):
            raise UserError(f"Run {run.id} is {run.status} and has no detector yet: evaluate a completed run.")
        if not (id_folder or "").strip() or not (ood_folder or "").strip():
            raise UserError("Give both an ID folder and an OOD folder.")
        id_folder, ood_folder = confined_folder(self.roots, id_folder), confined_folder(self.roots, ood_folder)
        run_config = stored_config(run, self.config.paths.home)
        detector, encoder = self.tools(progress)
        tuned = checkpoint.load_detector(run.artifacts["detector"])
        tuned.check(encoder.identity, [label.word for label in detector.negatives])
        result = training.before_after(encoder, detector.classifier, detector.id_features, detector.negative_features,
                                       tuned, id_folder, ood_folder, run_config, self.encoding(progress))
        warn_skipped(result.skipped)
        record = evaluation.record(self.store, training.run_config(run_config), result,
                                   {"finetune_run": run.id, "detector": run.artifacts["detector"]},
                                   self.config.paths.home)
        note = (f"{result.sets['ID'].count} ID and {result.sets['OOD'].count} OOD images · the detector of run {run.id}, "
                f"combination **{run_config.finetune.combination}** · recorded as evaluate run {record.id}")
        overlaps = training_overlap(run, {"ID": id_folder, "OOD": ood_folder})
        if overlaps:
            gr.Warning("The evaluation folders overlap the training data: " + "; ".join(overlaps))
            note = (f"⚠️ **These figures are not held-out:** {'; '.join(overlaps)}. A detector scores the images "
                    "it was tuned on (or their neighbours) too well: evaluate on folders apart from the training ones."
                    f"\n\n{note}")
        return metrics_rows(result), score_histograms(result), note


def build(suite: Suite, config: Config, roots: DataRoots) -> FinetuneTab:
    """Lay out the tab and wire its events to a FinetuneTab's handlers (returned)."""
    handlers = FinetuneTab(suite, config, roots)
    p, n, f = config.projection, config.negtune, config.finetune
    with gr.Tab("Fine-tuning", id="finetune"):
        gr.Markdown(INTRO)
        seen_key, seen_rows = gr.State(None), gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                path = gr.Textbox(label="Generation folder or its manifest.jsonl (the synthetic images, and their "
                                        "sources as the ID images)", elem_id="finetune-path",
                                  placeholder="/path/to/generation  (written by synood generate)")
                gr.Markdown("**Stage 2: projection** (Adam, cosine schedule)")
                with gr.Row():
                    projection_lr = gr.Number(p.lr, minimum=LR_RANGE[0], maximum=LR_RANGE[1], label="Learning rate",
                                              elem_id="finetune-projection-lr")
                    projection_epochs = gr.Number(p.epochs, precision=0, minimum=0, maximum=MAX_EPOCHS, label="Epochs",
                                                  elem_id="finetune-projection-epochs")
                    projection_batch = gr.Number(p.batch_size, precision=0, minimum=1, maximum=MAX_BATCH,
                                                 label="Batch size", elem_id="finetune-projection-batch")
                gr.Markdown("**Stage 3: negative labels** (SGD momentum, cosine schedule; unused when joint)")
                with gr.Row():
                    negatives_lr = gr.Number(n.lr, minimum=LR_RANGE[0], maximum=LR_RANGE[1],
                                            label="Learning rate (paper 2e-3, code 2e-2)",
                                            elem_id="finetune-negatives-lr")
                    negatives_epochs = gr.Number(n.epochs, precision=0, minimum=0, maximum=MAX_EPOCHS, label="Epochs",
                                                 elem_id="finetune-negatives-epochs")
                    negatives_batch = gr.Number(n.batch_size, precision=0, minimum=1, maximum=MAX_BATCH,
                                                label="Batch size", elem_id="finetune-negatives-batch")
                with gr.Row():
                    synthetic = gr.Number(f.synthetic_images or 0, precision=0, minimum=0, maximum=MAX_SYNTHETIC,
                                          label="Synthetic images m (0: all)", elem_id="finetune-synthetic")
                    mode = gr.Radio(MODE_CHOICES, value="joint" if n.joint else "separate", label="Stages",
                                    elem_id="finetune-mode")
                with gr.Row():
                    use_projection = gr.Checkbox(n.use_projection, label="Projection in stage 3 (paper: off)",
                                                 elem_id="finetune-use-projection")
                    combination = gr.Dropdown(COMBINATION_CHOICES, value=f.combination,
                                              label="Detector at test time", elem_id="finetune-combination")
                with gr.Row():
                    projection_seed = gr.Number(p.seed, precision=0, minimum=0, maximum=MAX_SEED,
                                                label="Projection seed", elem_id="finetune-projection-seed")
                    negatives_seed = gr.Number(n.seed, precision=0, minimum=0, maximum=MAX_SEED, label="Negatives seed",
                                               elem_id="finetune-negatives-seed")
                    subset_seed = gr.Number(f.seed, precision=0, minimum=0, maximum=MAX_SEED, label="Subset seed (m)",
                                            elem_id="finetune-subset-seed")
                gr.Markdown(CONVENTIONS_NOTE)
                with gr.Row():
                    projection_input = gr.Radio(INPUT_CHOICES, value=p.input, label="Projection reads",
                                                elem_id="finetune-projection-input")
                    negatives_parameter = gr.Radio(INPUT_CHOICES, value=n.parameter, label="Stage 3 learns",
                                                   elem_id="finetune-negatives-parameter")
                    schedule = gr.Radio(SCHEDULE_CHOICES, value=p.schedule, label="Cosine schedule steps",
                                        elem_id="finetune-schedule")
                with gr.Row():
                    launch_button = gr.Button("Launch", variant="primary", elem_id="finetune-launch")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="finetune-stop")
                    resume_button = gr.Button("Resume", elem_id="finetune-resume")
            with gr.Column(scale=1):
                run_box = gr.Textbox(handlers.latest, label="Run shown (pick one in the table, or paste its id and press Enter)",
                                     elem_id="finetune-run")
                status = gr.Markdown(elem_id="finetune-status")
                with gr.Row():
                    report_button = gr.Button("Make an HTML report of this run", size="sm", elem_id="finetune-report")
                    download = gr.DownloadButton(visible=False, size="sm", elem_id="finetune-download")
                plot = gr.Plot(curves([]), label="Loss and accuracy", elem_id="finetune-curve")
        with gr.Row():
            gr.Markdown("### Runs (from the run database; click a row to show it)")
            refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="finetune-refresh")
        table = gr.Dataframe(handlers.run_rows, headers=RUN_HEADERS, interactive=False, wrap=True,
                             max_height=360, column_widths=RUN_WIDTHS, elem_id="finetune-runs")
        gr.Markdown("### Before / after: the run's detector against plain NegLabel and the other scores")
        with gr.Row():
            id_folder = gr.Textbox(label="ID folder (images of ImageNet classes)", scale=2, elem_id="finetune-id")
            ood_folder = gr.Textbox(label="OOD folder", scale=2, elem_id="finetune-ood")
            evaluate_button = gr.Button("Evaluate", variant="primary", scale=1, elem_id="finetune-evaluate")
        note = gr.Markdown(elem_id="finetune-note")
        with gr.Row():
            metrics = gr.Dataframe(headers=METRIC_HEADERS, interactive=False, scale=1, wrap=True,
                                   column_widths=["22%", "18%", "15%", "15%", "15%", "15%"], elem_id="finetune-metrics")
            histogram = gr.Plot(label="Scores before and after", scale=1, elem_id="finetune-histogram")
        timer = gr.Timer(1.0)

        settings = [projection_lr, projection_epochs, projection_batch, negatives_lr, negatives_epochs,
                    negatives_batch, synthetic, mode, use_projection, combination, projection_seed, negatives_seed,
                    subset_seed, projection_input, negatives_parameter, schedule]
        launch_button.click(handlers.launch, inputs=[path, *settings], outputs=[run_box, status, plot, table],
                            api_name="finetune_launch", concurrency_limit=1, concurrency_id="finetune-features")
        resume_button.click(handlers.resume, inputs=run_box, outputs=[status, plot], api_name="finetune_resume",
                            concurrency_limit=1, concurrency_id="finetune-features")
        stop_button.click(handlers.stop, inputs=run_box, outputs=[status, plot], api_name="finetune_stop")
        run_box.submit(handlers.show, inputs=run_box, outputs=[status, plot], api_name="finetune_show")
        refresh.click(handlers.run_rows, outputs=table, api_name="finetune_runs")
        report_button.click(handlers.report, inputs=run_box, outputs=download, api_name="finetune_report")
        run_box.change(lambda: gr.DownloadButton(visible=False), outputs=download, api_visibility="private",
                       show_progress="hidden")
        table.select(handlers.picked, outputs=[run_box, status, plot], api_visibility="private")
        timer.tick(handlers.poll, inputs=[run_box, seen_key, seen_rows], outputs=[status, plot, table, seen_key, seen_rows],
                   api_visibility="private")
        evaluate_button.click(handlers.evaluate, inputs=[run_box, id_folder, ood_folder], outputs=[metrics, histogram, note],
                              api_name="finetune_evaluate", concurrency_limit=1, concurrency_id="finetune-features")
    handlers.run_box = run_box
    return handlers
