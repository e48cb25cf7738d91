"""Negative labels tab: why an image scores as it does under NegLabel, and the mined negatives themselves."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import gradio as gr
import plotly.graph_objects as go

from synood.config import Config, NegLabelConfig
from synood.errors import UserError
from synood.models import Suite
from synood.records import runs
from synood.records.runs import RunStore

from .detector import DetectorHolder
from .errors import shows_user_errors
from .inputs import chosen_path, photo_input, uploaded_image
from .notes import standin_note

if TYPE_CHECKING:  # torch, open_clip and the detector load on first use: the app must start in seconds
    import torch

    from synood.pipelines.detect import Detector
    from synood.pipelines.mining import NegativeLabel

INTRO = (
    "NegLabel scores an image against the 1000 ImageNet labels **and** thousands of mined *negative* labels, "
    "WordNet words far from every ImageNet class. The negatives are split into groups; in each group a softmax "
    "over the ID labels plus that group's negatives says how much of the image's similarity goes to ID labels. "
    "**S(x)** is the mean over groups: near 1 the image looks in-distribution, near 0 it looks like something "
    "else. Change the groups and the temperature to see how the score responds."
)
TOP_K = 10
SEARCH_LIMIT = 200


@dataclass
class Analysis:
    """What one image needs for re-scoring: its similarities to every ID and negative label, and its other scores."""

    id_similarity: torch.Tensor  # (1000,)
    negative_similarity: torch.Tensor  # (M,)
    baselines: dict[str, float]  # every registered score shown but NegLabel's (the card's main value), by name
    name: str  # the image's file name, so a card left on screen says which image it is for
    scores: dict[str, float] = field(default_factory=dict)  # every score shown, at the default settings
    reference: Reference | None = None  # the thresholds of the latest evaluation of this suite, if any
    missing: dict[str, str] = field(default_factory=dict)  # each registered score not shown: why


@dataclass(frozen=True)
class Reference:
    """Each score's threshold keeping 95 % of the ID images (MOS rule) in one saved evaluation run, and the
    fine-tuned detector file (and the tuned parts used) its trained scores read ("" when none ran)."""

    run: str
    thresholds: dict[str, float]
    checkpoint: str = ""
    combination: str = "both"


def reference_of(store: RunStore, suite: str, seen: dict[str, Reference | None]) -> Reference | None:
    """The thresholds of the newest completed evaluation of `suite` whose per-image scores were saved (each run's
    read once into `seen`); None when there is none."""
    from synood.method.metrics import MetricError, id_threshold
    from synood.pipelines.evaluation import EvaluationError, reopen
    from synood.pipelines.hardest import id_set_of

    for run in store.list(kind="evaluate", limit=50):
        if run.status != "completed" or run.inputs.get("suite") != suite or not run.artifacts.get("evaluation"):
            continue
        if run.id not in seen:
            try:
                saved = reopen(run.artifacts["evaluation"])
                ids = saved.sets[id_set_of(saved)]
                seen[run.id] = Reference(run.id, {name: id_threshold(values.double().numpy(), 0.95, "mos")
                                                  for name, values in ids.scores.items()},
                                         run.inputs.get("checkpoint") or "",
                                         (saved.report.get("checkpoint") or {}).get("combination", "both"))
            except (EvaluationError, MetricError):
                seen[run.id] = None
        if seen[run.id] is not None:
            return seen[run.id]
    return None


def against(analysis: Analysis) -> str:
    """The card's line comparing each score of the image with the reference evaluation's 95 %-ID threshold."""
    from synood.method.scorers import SCORERS

    found = analysis.reference
    if found is None:
        return ("No evaluation of this suite to compare with yet: run one in the Evaluation tab and each score is "
                "shown against its 95 %-ID threshold here.")
    parts = [f"{SCORERS[name].title} {value:.4g} {'≥' if value >= found.thresholds[name] else '<'} "
             f"{found.thresholds[name]:.4g} ({'ID' if value >= found.thresholds[name] else 'OOD'})"
             for name, value in analysis.scores.items() if name in found.thresholds and name in SCORERS]
    return (f"Against the 95 %-ID thresholds of evaluation run {found.run} (default settings): " + " · ".join(parts)
            if parts else f"Evaluation run {found.run} has none of these scores.")


def unavailable(analysis: Analysis) -> str:
    """The card's line naming each registered score it does not show, and why."""
    from synood.method.scorers import SCORERS

    return " · ".join(f"{SCORERS[name].title}: {why}" for name, why in analysis.missing.items())


def bars(names: list[str], values: list[float], title: str, color: str) -> go.Figure:
    """A horizontal bar chart, largest on top, one bar per name (`names` must be distinct: plotly stacks repeats)."""
    figure = go.Figure(go.Bar(x=values[::-1], y=names[::-1], orientation="h", marker_color=color,
                              hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    figure.update_layout(title=title, height=340, margin=dict(l=10, r=10, t=40, b=30), xaxis_title="cosine similarity",
                         yaxis=dict(type="category", automargin=True))
    return figure


def negative_names(labels: list[NegativeLabel]) -> list[str]:
    """The words of `labels`, a word mined both as a noun and as an adjective marked with its part of speech."""
    from synood.data.classnames import distinct

    return distinct([label.word for label in labels], [label.pos for label in labels])


def group_spread(groups: torch.Tensor, score: float) -> go.Figure:
    """Histogram of the per-group scores with S(x), their mean, marked (its label on the side with room)."""
    figure = go.Figure(go.Histogram(x=groups.tolist(), xbins=dict(start=0, end=1.0001, size=0.025),
                                    marker_color="#6366f1", hovertemplate="%{x}: %{y} groups<extra></extra>"))
    figure.add_vline(x=score, line_color="#111827", line_dash="dash", annotation_text=f"S(x) = {score:.3f}",
                     annotation_position="top right" if score < 0.5 else "top left")
    figure.update_layout(title="Per-group scores", height=300, margin=dict(l=10, r=30, t=40, b=30),
                         xaxis_title="ID share of the softmax in one group", yaxis_title="groups",
                         xaxis_range=[-0.02, 1.05])
    return figure


def ranked(labels: list[NegativeLabel], query: str) -> list[NegativeLabel]:
    """The labels containing `query` (any case): the word itself first, then words holding it as a whole word, then
    words starting with it, then the rest; the mined order within each."""
    needle = query.strip().lower()
    whole = re.compile(rf"\b{re.escape(needle)}\b")

    def rank(word: str) -> int:
        return 0 if word == needle else 1 if whole.search(word) else 2 if word.startswith(needle) else 3

    found = [(rank(label.word.lower()), i, label) for i, label in enumerate(labels) if needle in label.word.lower()]
    return [label for _, _, label in sorted(found, key=lambda item: item[:2])]


def baseline(name: str, value: float) -> str:
    """One registered score on the card by its title; the energy with the paper's sign, E(x) (the registry's is -E(x))."""
    from synood.method.scorers import SCORERS

    if name == "energy":
        return f"energy E(x) = {-value:.2f} (lower = more in-distribution)"
    return f"{SCORERS[name].title} {value:.4g}"


def summary(score: float, analysis: Analysis, ngroups: int, temperature: float, detector: Detector) -> str:
    """The card: NegLabel's S(x) at the sliders' settings, then every other standard score of the image."""
    verdict = "looks in-distribution" if score >= 0.5 else "looks out-of-distribution"
    others = " · ".join(baseline(name, value) for name, value in analysis.baselines.items())
    return (f'<div class="score-card"><div class="score-image">{html.escape(analysis.name)}</div>'
            f'<div class="score-value" id="neglabel-score">S(x) = {score:.4f}</div>'
            f"<div>{verdict} · {ngroups} groups · temperature {temperature:g} · "
            f"{len(detector.negatives):,} negative labels</div>"
            f'<div class="score-others">Baselines: {html.escape(others)}</div>'
            f'<div class="score-others" id="neglabel-thresholds">{html.escape(against(analysis))}</div>'
            + (f'<div class="score-others" id="neglabel-unavailable">Not shown: {html.escape(unavailable(analysis))}'
               "</div>" if analysis.missing else "") + "</div>")


@dataclass
class Inspector:
    """The tab's image input, what scoring it reads and shows, and where its progress shows: another tab opens an
    image here (a path under the served folder) and chains `analyse` on these."""

    image: gr.Image
    inputs: list
    outputs: list
    status: gr.Markdown
    analyse: Callable


class NegLabelTab:
    """The tab's handlers, callable without a page: the shared detector and the NegLabel defaults they read;
    `inspector` once the tab is laid out."""

    def __init__(self, holder: DetectorHolder, defaults: NegLabelConfig, store: RunStore | None = None):
        self.holder, self.defaults, self.store = holder, defaults, store
        self.references: dict[str, Reference | None] = {}  # by evaluation run id
        self.inspector: Inspector | None = None
        self.boundary: gr.Button | None = None  # once laid out: sends the image to Noise optimisation

    @shows_user_errors
    def rescore(self, analysis: Analysis | None, ngroups: float, temperature: float, progress=gr.Progress()):
        """The card and the per-group histogram of a scored image at other slider settings (nothing before one)."""
        from synood.method import scores

        if analysis is None:
            return gr.skip(), gr.skip()
        detector = self.holder.get(progress)
        groups_wanted = int(ngroups)
        if not 1 <= groups_wanted <= len(detector.negatives):
            raise UserError(f"Number of groups must be between 1 and {len(detector.negatives)}.")
        id_logits = analysis.id_similarity[None] / temperature
        negative_logits = analysis.negative_similarity[None] / temperature
        score, groups = scores.grouped_scores(id_logits, negative_logits, groups_wanted, self.defaults.group_seed)
        value = float(score[0])
        return summary(value, analysis, groups_wanted, temperature, detector), group_spread(groups[0], value)

    @shows_user_errors
    def analyse(self, path: str | None, ngroups: float, temperature: float, progress=gr.Progress()):
        """Score one image: its analysis (for re-scoring), the card, the top ID and negative labels, the histogram."""
        from synood.data.classnames import display_names
        from synood.method.scorers import standard

        path = chosen_path(path)
        image = uploaded_image(path)
        detector = self.holder.get(progress)
        progress(0.95, desc="Scoring the image")
        found = detector.score([image])  # every standard registered score, in one pass
        reference = reference_of(self.store, self.holder.suite.name, self.references) if self.store else None
        others, missing = self.others(detector, found, reference)
        scores = {**{name: float(found[name][0]) for name in standard()}, **others}
        features = found["features"].double()  # float64, as the scorers: S(x) near 1 keeps its digits
        analysis = Analysis((features @ detector.id_features.double().T)[0],
                            (features @ detector.negative_features.double().T)[0],
                            {name: value for name, value in scores.items() if name != "neglabel"},
                            Path(path).name, scores, reference, missing)
        top_id = analysis.id_similarity.topk(TOP_K)
        top_negative = analysis.negative_similarity.topk(TOP_K)
        id_names = display_names(detector.id_names)
        id_plot = bars([id_names[i] for i in top_id.indices.tolist()], top_id.values.tolist(),
                       f"Top {TOP_K} ImageNet (ID) labels", "#16a34a")
        negative_plot = bars(negative_names([detector.negatives[i] for i in top_negative.indices.tolist()]),
                             top_negative.values.tolist(), f"Top {TOP_K} negative labels", "#dc2626")
        card, spread = self.rescore(analysis, ngroups, temperature)
        return analysis, card, id_plot, negative_plot, spread

    @staticmethod
    def others(detector: Detector, found: dict[str, torch.Tensor],
               reference: Reference | None) -> tuple[dict[str, float], dict[str, str]]:
        """The registered scores beyond the standard ones that can be had at once, and why each other cannot: a
        score with its own pool when that pool is made or `reference` evaluated it (so it is cached), a trained
        score with the detector file `reference` evaluated."""
        from synood.method.scorers import SCORERS, standard
        from synood.records.checkpoint import CheckpointError, load_detector

        evaluated = reference.thresholds if reference is not None else {}
        values, missing = {}, {}
        for name, cls in SCORERS.items():
            if name in standard():
                continue
            tuned = None
            if cls.kind == "trained":
                if reference is None or not reference.checkpoint or name not in evaluated:
                    missing[name] = "needs a fine-tuned detector: evaluate with one in the Evaluation tab"
                    continue
                try:
                    tuned = load_detector(reference.checkpoint)
                    tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])
                except CheckpointError as exc:
                    missing[name] = f"the detector of evaluation run {reference.run} cannot be used: {exc}"
                    continue
            elif cls.pool not in detector.pools and name not in evaluated:
                missing[name] = ("mines its own pool on first use (minutes): evaluate with it once in the Evaluation "
                                 "tab")
                continue
            scored = detector.scored([name], found["raw"], found["logits"], tuned,
                                     reference.combination if reference is not None else "both")
            values[name] = float(scored[name][0])
        return values, missing

    @shows_user_errors
    def search(self, query: str, progress=gr.Progress()):
        """The mined negative labels matching `query`, ranked, and a line saying how many and in which order."""
        detector = self.holder.get(progress)
        needle = query.strip()
        found = ranked(detector.negatives, needle)
        rows = [[label.word, label.pos, label.lexname, round(label.percentile, 4)] for label in found[:SEARCH_LIMIT]]
        shown = f" (first {SEARCH_LIMIT} shown)" if len(found) > SEARCH_LIMIT else ""
        mined = ("nouns come before adjectives, each ordered by its 95th-percentile similarity to the ID labels, "
                 "lowest (most distant) first.")
        order = ("The word itself comes first, then words holding it as a whole word, then words starting with it, "
                 f"then the rest; within each, {mined}") if needle else mined.capitalize()
        note = (f"{len(found):,} of {len(detector.negatives):,} negative labels match "
                f"{html.escape(repr(needle)) if needle else 'everything'}{shown}. {order}")
        return rows, note


def build(suite: Suite, config: Config) -> NegLabelTab:
    """Lay out the tab and wire its events to a NegLabelTab's handlers (returned)."""
    handlers = NegLabelTab(DetectorHolder.shared(suite, config), config.neglabel, runs.store_for(config.paths.home))
    defaults = config.neglabel
    with gr.Tab("Negative labels", id="neglabel"):
        gr.Markdown(INTRO)
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image = photo_input("neglabel-image", label="Image", split=None, height=280)
                ngroups = gr.Slider(1, 1000, value=defaults.ngroups, step=1, label="Number of groups",
                                    elem_id="neglabel-groups")
                temperature = gr.Slider(0.001, 0.1, value=defaults.temperature, step=0.001,
                                        label="Temperature (logits = cosine / temperature)", elem_id="neglabel-temperature")
                run = gr.Button("Score", variant="primary", elem_id="neglabel-run")
                handlers.boundary = gr.Button("Make a boundary sample of this image (Noise optimisation)", size="sm",
                                              elem_id="neglabel-boundary")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="neglabel-status", elem_classes=["status-line"])
                gr.Markdown(standin_note(suite, "encoder", "classifier"), elem_id="neglabel-standin",
                            elem_classes=["standin-note"])
                card = gr.HTML(elem_id="neglabel-card")
                with gr.Row():
                    id_plot = gr.Plot(label="ID labels", elem_id="neglabel-id-plot")
                    negative_plot = gr.Plot(label="Negative labels", elem_id="neglabel-negative-plot")
                spread = gr.Plot(label="Per-group scores", elem_id="neglabel-spread")
        with gr.Accordion("Browse the mined negative labels", open=False, elem_id="neglabel-browse"):
            with gr.Row():
                query = gr.Textbox(label="Search", placeholder="e.g. ship, blue, fungus", scale=4,
                                   elem_id="neglabel-query")
                find = gr.Button("Search", scale=1, elem_id="neglabel-search")
            found = gr.Markdown(elem_id="neglabel-found")
            table = gr.Dataframe(headers=["word", "part of speech", "lexname", "95th-percentile similarity"],
                                 interactive=False, elem_id="neglabel-table")
        handlers.inspector = Inspector(image, [image, ngroups, temperature],
                                       [state, card, id_plot, negative_plot, spread], status, handlers.analyse)
        run.click(handlers.analyse, inputs=handlers.inspector.inputs, outputs=handlers.inspector.outputs,
                  api_name="neglabel_score", show_progress_on=status)
        for slider in (ngroups, temperature):
            slider.change(handlers.rescore, inputs=[state, ngroups, temperature], outputs=[card, spread],
                          api_visibility="private", trigger_mode="always_last", show_progress_on=status)
        gr.on([find.click, query.submit], handlers.search, inputs=query, outputs=[table, found], api_name="negatives",
              show_progress_on=found)
    return handlers
