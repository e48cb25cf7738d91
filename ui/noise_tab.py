"""Noise optimisation tab: watch one ID image pushed toward the ID/OOD boundary, iteration by iteration."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr
from PIL import Image

from synood.config import Config
from synood.images import to_pil
from synood.models import ModelUnavailableError, Suite
from synood.models.suites import GENERATOR_STEP_SIZES
from synood.prompts import context_prompt

from .context_tab import parse_labels
from .inputs import photo_input, uploaded_image
from .plots import optimisation_curve

if TYPE_CHECKING:
    import plotly.graph_objects as go

INTRO = (
    "The generator repaints the image around its context labels, starting from random noise; that noise is then "
    "nudged, iteration by iteration, against the gradient of an OOD loss on the energy classifier. The **energy** "
    "E(x) = -logsumexp(logits) is very negative when the classifier is sure the image shows one of its 1000 "
    "classes; pushing it up toward **m_out** moves the image to the **boundary** between in-distribution and "
    "out-of-distribution. On the curve, the loss should fall and the energy rise; the slider steps through every "
    "iteration's image beside the source."
)
LOSS_CHOICES = [("squared (m_out - s)^2, reference code", "squared"), ("hinge relu(m_out + 1 - s)^2", "hinge"),
                ("energy relu(m_out - E)^2, paper eq. 7", "energy")]
GRADIENT_CHOICES = [("skip: dL/dz0 applied to the noise (fast)", "skip"),
                    ("full: through every denoising step (exact, slow)", "full")]


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
            f"**{frame.id_score:.3f}** · predicted: {frame.predicted} (source: {run.source_predicted})")


def build(suite: Suite, config: Config) -> None:
    defaults = config.synthesis
    family = suite.spec.components["generator"].family
    own_step = GENERATOR_STEP_SIZES.get(family)

    def run(path: str | None, labels_text: str, iterations: float, step_size: float | None, loss: str,
            gradient: str, seed: float, m_out: float, progress=gr.Progress()):
        image = uploaded_image(path)
        from synood import generation

        settings = dataclasses.replace(defaults, iterations=int(iterations), loss=loss, gradient=gradient,
                                       seed=int(seed or 0), m_out=float(m_out),
                                       step_size=None if step_size in (None, "") else float(step_size))
        try:
            progress(0.05, desc="Loading the generator and the energy classifier")
            generator, classifier = suite.get("generator"), suite.get("classifier")
            labels = parse_labels(labels_text or "")
            if not labels:
                progress(0.1, desc="Listing the context labels")
                labels = suite.get("labeller").context(image)
        except ModelUnavailableError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        prompt = context_prompt(labels, settings.prompt_template, settings.context_max_chars)
        progress(0.2, desc="Preparing the image (prompt and image latents, once)")
        canvas = generation.prepare(generator, image, prompt, settings.seed, settings)
        before, predicted = generation.source_energy(classifier, canvas)
        names = classifier.class_names
        result = Run(to_pil(canvas.source), before, names[predicted], settings.m_out, settings.iterations, ())
        for step in generation.iterations(generator, classifier, canvas, settings):
            frame = Frame(to_pil(step.image), step.loss, step.energy, step.id_score, names[step.predicted])
            result = dataclasses.replace(result, frames=result.frames + (frame,))
            shown = len(result.frames)
            yield ("\n".join(labels), prompt, figure(result),
                   gr.update(maximum=settings.iterations, value=shown, interactive=True),
                   result.source, frame.image, describe(result, shown), result)

    def show(result: Run | None, shown: float):
        if result is None or not result.frames:
            return gr.update(), gr.update()
        shown = min(max(int(shown), 1), len(result.frames))
        return result.frames[shown - 1].image, describe(result, shown)

    with gr.Tab("Noise optimisation", id="noise"):
        gr.Markdown(INTRO)
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image = photo_input("noise-image")
                labels = gr.Textbox(label="Context labels (one per line; left empty, the labeller lists them)",
                                    lines=3, elem_id="noise-labels")
                prompt = gr.Textbox(label="Generator prompt", interactive=False, elem_id="noise-prompt")
            with gr.Column(scale=1):
                with gr.Row():
                    iterations = gr.Slider(1, 30, value=defaults.iterations, step=1, label="Iterations",
                                           elem_id="noise-iterations")
                    step_size = gr.Number(defaults.step_size if defaults.step_size is not None else own_step,
                                          label=f"Learning rate r·ρ (this generator's own: {own_step:g})",
                                          elem_id="noise-step")
                with gr.Row():
                    loss = gr.Dropdown(LOSS_CHOICES, value=defaults.loss, label="Loss", elem_id="noise-loss")
                    m_out = gr.Number(defaults.m_out, label="m_out", elem_id="noise-m-out")
                with gr.Row():
                    gradient = gr.Radio(GRADIENT_CHOICES, value=defaults.gradient, label="Gradient",
                                        elem_id="noise-gradient")
                    seed = gr.Number(defaults.seed, precision=0, label="Seed", elem_id="noise-seed")
                with gr.Row():
                    start = gr.Button("Run", variant="primary", elem_id="noise-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="noise-stop")
                plot = gr.Plot(label="Loss and energy", elem_id="noise-curve")
        shown = gr.Slider(1, defaults.iterations, value=1, step=1, label="Iteration shown", interactive=False,
                          elem_id="noise-step-slider")
        stats = gr.Markdown(elem_id="noise-stats")
        with gr.Row():
            source = gr.Image(type="pil", format="png", label="Source (as the generator sees it)", interactive=False,
                              height=360, elem_id="noise-source")
            current = gr.Image(type="pil", format="png", label="Image at this iteration (download: the button)",
                               interactive=False, height=360, buttons=["download", "fullscreen"],
                               elem_id="noise-frame")
        running = start.click(run, inputs=[image, labels, iterations, step_size, loss, gradient, seed, m_out],
                              outputs=[labels, prompt, plot, shown, source, current, stats, state],
                              api_name="noise_run", concurrency_limit=1, concurrency_id="generator")
        stop.click(None, cancels=[running])
        shown.change(show, inputs=[state, shown], outputs=[current, stats], api_name=False, trigger_mode="always_last")
