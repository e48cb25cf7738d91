"""Noise optimisation tab: watch one ID image pushed toward the ID/OOD boundary, iteration by iteration."""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from PIL import Image

from synood.data.classnames import display_names
from synood.config import Config, Gradient, Loss, StepRule, SynthesisConfig, labelled
from synood.data.images import to_pil
from synood.models import Suite
from synood.models.suites import GENERATOR_STEP_SIZES
from synood.method.prompts import context_prompt

from .context_tab import parse_labels
from .errors import shows_user_errors
from .inputs import photo_input, uploaded_image
from .notes import standin_note
from .plots import optimisation_curve

if TYPE_CHECKING:
    import plotly.graph_objects as go

# What the generator does, by family: the intro must describe what actually runs.
GENERATOR_TEXTS = {
    "diffusers": "The generator repaints the image around its context labels, starting from random noise; that noise "
                 "is then nudged, iteration by iteration, against the gradient of an OOD loss on the energy "
                 "classifier.",
    "classical": "This suite has no diffusion model. Its stand-in generator erases the main object (where its own "
                 "EfficientNet-Lite0 sees the top class) and fills the hole with the scene's own surroundings, taking patches preferably from where the "
                 "context labels are; a smooth noise field modulates that fill, and it is this field that is nudged, "
                 "iteration by iteration, against the gradient of an OOD loss on the energy classifier, as the "
                 "diffusion noise would be.",
}
ENERGY_TEXT = (
    "The **energy** E(x) = -logsumexp(logits) is very negative when the classifier is sure the image shows one of "
    "its 1000 classes; pushing it up toward **m_out** moves the image to the **boundary** between in-distribution "
    "and out-of-distribution. On the curve, the loss should fall and the energy rise; the slider steps through every "
    "iteration's image beside the source. Stop ends the run after the iteration in progress and keeps what it made."
)
LOSS_CHOICES = labelled("synthesis.loss", {"squared": "squared (m_out - s)^2, reference code",
                                           "hinge": "hinge relu(m_out + 1 - s)^2",
                                           "energy": "energy relu(m_out - E)^2, paper eq. 7"})
MAX_ITERATIONS = 30
MAX_STEP = 1000.0  # far past any useful step: the boxes have limits a person can try
M_OUT_LIMIT = 100.0
MAX_SEED = 2**31 - 1
PAGE_WAIT = 10.0  # s the loop waits for a page to draw an iteration before it goes on without it
GRADIENT_CHOICES = labelled("synthesis.gradient", {"skip": "skip: dL/dz0 applied to the noise (fast)",
                                                   "full": "full: through every denoising step (exact, slow)"})


def step_rule_choices(batch_size: int) -> list[tuple[str, str]]:
    """The two step rules: the paper's r·ρ per image, or the released code's mean loss over a batch of B."""
    return labelled("synthesis.step_rule", {"image": "Step per image: r·ρ (paper)",
                                            "batch": f"Batch mean, B={batch_size}: r·ρ/{batch_size} (released code)"})


@dataclass(frozen=True)
class Frame:
    """One iteration as the tab shows it."""

    image: Image.Image
    loss: float
    energy: float
    id_score: float
    predicted: str


@dataclass(frozen=True)
class Run:
    """What the slider needs after a run: the source, its energy, and every iteration so far."""

    source: Image.Image
    source_energy: float
    source_predicted: str
    m_out: float
    total: int  # the iterations asked for
    step: str  # the noise step applied and its rule (generation.describe_step)
    frames: tuple[Frame, ...]


def figure(run: Run) -> go.Figure:
    indices = list(range(1, len(run.frames) + 1))
    return optimisation_curve(indices, [f.loss for f in run.frames], [f.energy for f in run.frames],
                              run.source_energy, run.m_out)


def describe(run: Run, shown: int) -> str:
    """The numbers of the iteration on screen, beside the source's."""
    frame = run.frames[shown - 1]
    return (f"**Iteration {shown} of {run.total}** · loss **{frame.loss:.4f}** · energy E(x) **{frame.energy:.3f}** "
            f"(source {run.source_energy:.3f}, m_out {run.m_out:g}) · classifier ID score (max softmax) "
            f"**{frame.id_score:.3f}** · predicted: {frame.predicted} (source: {run.source_predicted}) · {run.step}")


def ended(run: Run, stopped: bool) -> str:
    """The run's last word: how far it got."""
    done = len(run.frames)
    if stopped:
        return f"**Stopped after iteration {done} of {run.total}**; the images and curve so far are kept."
    return f"Done: {done} of {run.total} iterations."


def slider(total: int, shown: int):
    """The "iteration shown" slider for a run of `total` iterations: hidden while there is only one to show
    (a slider needs its minimum below its maximum)."""
    if total < 2:
        return gr.update(visible=False)
    return gr.update(maximum=total, value=shown, interactive=True, visible=True)


class Watch:
    """One session's run as its page sees it. A page that draws slower than the loop iterates would fall behind
    (it showed iteration 2 while the loop was at 9), so the loop waits for the page to show each iteration before it
    computes the one after next; and Stop ends the run one iteration after what the page showed when it was pressed.
    API callers have no page to wait for: their runs are not paced."""

    def __init__(self, paced: bool):
        self.paced = paced
        self.pressed = threading.Event()
        self.seen_at_stop = 0
        self._shown = 0
        self._changed = threading.Condition()

    def shown(self, count: int) -> None:
        """The page has drawn `count` iterations."""
        with self._changed:
            self._shown = max(self._shown, count)
            self._changed.notify_all()

    def press(self, seen: int) -> None:
        """Stop, pressed while the page showed `seen` iterations."""
        with self._changed:
            self.seen_at_stop = seen
            self.pressed.set()
            self._changed.notify_all()

    def keep(self, made: int) -> int:
        """How many of `made` iterations a stopped run keeps: those on screen at Stop plus the one then in progress."""
        return min(made, self.seen_at_stop + 1)

    def wait_for_page(self, count: int, timeout: float = PAGE_WAIT) -> None:
        """Until the page has drawn `count` iterations, Stop is pressed, or `timeout` s pass (a stalled page)."""
        if self.paced:
            with self._changed:
                self._changed.wait_for(lambda: self._shown >= count or self.pressed.is_set(), timeout)


class NoiseTab:
    """The tab's handlers, callable without a page: the suite, the synthesis defaults, and each browser session's
    run in progress (what its page has shown, and its Stop)."""

    def __init__(self, suite: Suite, defaults: SynthesisConfig):
        self.suite, self.defaults = suite, defaults
        self.watches: dict[str | None, Watch] = {}  # by session hash
        self.target: list = []  # once laid out: the image input and the labels box another tab prefills

    @shows_user_errors
    def prefill(self, path: str, progress=gr.Progress()) -> tuple[str, str, gr.Tabs]:
        """An image sent from another tab (a file the app serves), its context labels listed by the labeller, and
        this tab selected: "make a boundary sample of this"."""
        from ui.thumbnails import served_copy

        image = uploaded_image(path)
        progress(0.1, desc="Listing the context labels")
        labels = self.suite.get("labeller").context(image)
        return str(served_copy(Path(path))), "\n".join(labels), gr.Tabs(selected="noise")

    @shows_user_errors
    def run(self, path: str | None, labels_text: str, iterations: float, step_size: float | None, loss: Loss,
            gradient: Gradient, seed: float, m_out: float, step_rule: StepRule, request: gr.Request,
            progress=gr.Progress()):
        """Optimise the image's noise, yielding every iteration (labels, prompt, curve, slider, images, stats, the
        run, status, count); a bad value is one message naming its key, before anything on screen changes."""
        image = uploaded_image(path)
        from synood.pipelines import generation

        suite = self.suite
        settings = dataclasses.replace(self.defaults, iterations=int(iterations), loss=loss, gradient=gradient,
                                       seed=int(seed or 0), m_out=float(m_out), step_rule=step_rule,
                                       step_size=None if step_size in (None, "") else float(step_size))
        watch = self.watches[request.session_hash] = Watch(paced=request.headers.get("x-gradio-user") == "app")
        try:
            progress(0.05, desc="Loading the generator and the energy classifier")
            generator, classifier = suite.get("generator"), suite.get("classifier")
            applied = generation.describe_step(generator, settings)
            labels = parse_labels(labels_text or "")
            if not labels:
                progress(0.1, desc="Listing the context labels")
                labels = suite.get("labeller").context(image)
            prompt = context_prompt(labels, settings.prompt_template, settings.context_max_chars)
            if watch.pressed.is_set():
                yield ("\n".join(labels), prompt, *[gr.skip()] * 6, "**Stopped before the first iteration.**", 0)
                return
            progress(0.2, desc="Preparing the image (prompt and image latents, once)")
            canvas = generation.prepare(generator, image, prompt, settings.seed, settings, context=labels)
            before, predicted = generation.source_energy(classifier, canvas)
            names = display_names(classifier.class_names)
            result = Run(to_pil(canvas.source), before, names[predicted], settings.m_out, settings.iterations,
                         applied, ())
            for step in generation.iterations(generator, classifier, canvas, settings):
                frame = Frame(to_pil(step.image), step.loss, step.energy, step.id_score, names[step.predicted])
                frames = result.frames + (frame,)
                stopped = watch.pressed.is_set()
                result = dataclasses.replace(result, frames=frames[:watch.keep(len(frames))] if stopped else frames)
                shown = len(result.frames)
                yield ("\n".join(labels), prompt, figure(result), slider(settings.iterations, shown),
                       result.source, result.frames[-1].image, describe(result, shown), result,
                       ended(result, stopped) if stopped or shown == settings.iterations
                       else f"Iteration {shown} of {settings.iterations}...", shown)
                if stopped:
                    return
                if shown < settings.iterations:
                    watch.wait_for_page(shown - 1)
        finally:
            self.watches.pop(request.session_hash, None)

    @shows_user_errors
    def stop_run(self, seen: float | None, request: gr.Request) -> None:
        """Stop this session's run, whose page showed `seen` iterations."""
        if request.session_hash in self.watches:
            self.watches[request.session_hash].press(int(seen or 0))

    @shows_user_errors
    def page_shows(self, count: float | None, request: gr.Request) -> None:
        """This session's page has drawn `count` iterations."""
        if request.session_hash in self.watches:
            self.watches[request.session_hash].shown(int(count or 0))

    @staticmethod
    @shows_user_errors
    def show(result: Run | None, shown: float):
        """The image and stats of iteration `shown` of a finished or running run."""
        if result is None or not result.frames:
            return gr.update(), gr.update()
        shown = min(max(int(shown), 1), len(result.frames))
        return result.frames[shown - 1].image, describe(result, shown)


def build(suite: Suite, config: Config) -> NoiseTab:
    """Lay out the tab and wire its events to a NoiseTab's handlers (returned)."""
    defaults = config.synthesis
    family = suite.spec.components["generator"].family
    own_step = GENERATOR_STEP_SIZES.get(family)
    handlers = NoiseTab(suite, defaults)

    with gr.Tab("Noise optimisation", id="noise"):
        gr.Markdown(f"{GENERATOR_TEXTS.get(family, GENERATOR_TEXTS['diffusers'])} {ENERGY_TEXT}", elem_id="noise-intro")
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image = photo_input("noise-image")
                labels = gr.Textbox(label="Context labels (one per line; left empty, the labeller lists them)",
                                    lines=3, elem_id="noise-labels")
                prompt = gr.Textbox(label="Generator prompt", interactive=False, elem_id="noise-prompt")
            with gr.Column(scale=1):
                with gr.Row():
                    iterations = gr.Slider(1, MAX_ITERATIONS, value=defaults.iterations, step=1, label="Iterations",
                                           elem_id="noise-iterations")
                    step_size = gr.Number(defaults.step_size if defaults.step_size is not None else own_step,
                                          minimum=0, maximum=MAX_STEP,
                                          label=f"Learning rate r·ρ (this generator's own: {own_step:g})",
                                          elem_id="noise-step")
                with gr.Row():
                    loss = gr.Dropdown(LOSS_CHOICES, value=defaults.loss, label="Loss", elem_id="noise-loss")
                    m_out = gr.Number(defaults.m_out, minimum=-M_OUT_LIMIT, maximum=M_OUT_LIMIT, label="m_out",
                                      elem_id="noise-m-out")
                with gr.Row():
                    gradient = gr.Radio(GRADIENT_CHOICES, value=defaults.gradient, label="Gradient",
                                        elem_id="noise-gradient")
                    seed = gr.Number(defaults.seed, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                     elem_id="noise-seed")
                step_rule = gr.Radio(step_rule_choices(defaults.batch_size), value=defaults.step_rule,
                                     label="Step rule (the stats line shows the step applied)",
                                     elem_id="noise-step-rule")
                with gr.Row():
                    start = gr.Button("Run", variant="primary", elem_id="noise-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="noise-stop")
                status = gr.Markdown(elem_id="noise-status", elem_classes=["status-line"])
                plot = gr.Plot(label="Loss and energy", elem_id="noise-curve")
        note = standin_note(suite, "generator", "classifier")
        if note:
            gr.Markdown(note, elem_id="noise-standin", elem_classes=["standin-note"])
        shown = gr.Slider(1, max(defaults.iterations, 2), value=1, step=1, label="Iteration shown", interactive=False,
                          elem_id="noise-step-slider")
        stats = gr.Markdown(elem_id="noise-stats")
        with gr.Row():
            source = gr.Image(type="pil", format="png", label="Source (as the generator sees it)", interactive=False,
                              height=360, elem_id="noise-source")
            current = gr.Image(type="pil", format="png", label="Image at this iteration (download: the button)",
                               interactive=False, height=360, buttons=["download", "fullscreen"],
                               elem_id="noise-frame")
        handlers.target = [image, labels]
        made = gr.Number(0, visible=False, elem_id="noise-made")  # iterations the page has received: Stop sends it
        start.click(lambda: 0, outputs=made, api_visibility="private", queue=False, show_progress="hidden").then(
            handlers.run, inputs=[image, labels, iterations, step_size, loss, gradient, seed, m_out, step_rule],
            outputs=[labels, prompt, plot, shown, source, current, stats, state, status, made],
            api_name="noise_run", concurrency_limit=1, concurrency_id="generator", show_progress_on=status)
        stop.click(handlers.stop_run, inputs=made, api_name="noise_stop", queue=False)
        made.change(handlers.page_shows, inputs=made, api_visibility="private", queue=False, show_progress="hidden")
        # .input, not .change: only a person's move shows an earlier iteration (the run's own updates of the slider
        # would race the run's stats line)
        shown.input(handlers.show, inputs=[state, shown], outputs=[current, stats], api_visibility="private",
                    trigger_mode="always_last", show_progress="hidden")
    return handlers
