"""Context labels tab: what the labeller sees around an image's main object, editable, and the prompt it makes."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from synood.data.classnames import display_names
from synood.config import Config, SynthesisConfig
from synood.models import Suite
from synood.method.prompts import context_prompt

from .errors import shows_user_errors
from .inputs import photo_input, uploaded_image
from .notes import standin_note

INTRO = (
    "SynOOD regenerates an in-distribution (ID) image around everything **except** its main object, so the "
    "result keeps the scene but loses what made it ID. The **context labeller** lists those other elements; "
    "they become the generator's prompt. Pick a photo, list its context, then edit the labels (one per line): "
    "the prompt below follows your edits."
)


def parse_labels(text: str) -> list[str]:
    """Labels typed one per line or separated by commas, blanks and repeats dropped, order kept."""
    labels = [part.strip() for line in text.splitlines() for part in line.split(",")]
    return list(dict.fromkeys(label for label in labels if label))


def main_object(suite: Suite, image: Image.Image) -> str:
    """The classifier's top ImageNet label for the image, with its probability."""
    import torch

    classifier = suite.get("classifier")
    with torch.no_grad():
        probabilities = classifier.logits(classifier.to_tensor(image)[None])[0].float().softmax(dim=-1)
    index = int(probabilities.argmax())
    name = display_names(classifier.class_names)[index]
    return f"Main object (the classifier's top label): **{name}** ({probabilities[index]:.0%})"


class ContextTab:
    """The tab's handlers, callable without a page: the suite and the synthesis settings that make the prompt."""

    def __init__(self, suite: Suite, synthesis: SynthesisConfig):
        self.suite, self.synthesis = suite, synthesis

    @shows_user_errors
    def prompt_for(self, text: str) -> str:
        """The generator's prompt for labels typed one per line."""
        return context_prompt(parse_labels(text), self.synthesis.prompt_template, self.synthesis.context_max_chars)

    @shows_user_errors
    def list_context(self, path: str | None, progress=gr.Progress()) -> tuple[str, str, str]:
        """The labeller's context labels for the image, the prompt they make, and the image's main object."""
        image = uploaded_image(path)
        progress(0.1, desc="Loading the context labeller")
        labeller = self.suite.get("labeller")
        progress(0.5, desc="Listing context")
        labels = labeller.context(image)
        heading = main_object(self.suite, image)
        text = "\n".join(labels)
        return text, self.prompt_for(text), heading


def build(suite: Suite, config: Config) -> ContextTab:
    """Lay out the tab and wire its events to a ContextTab's handlers (returned)."""
    synthesis = config.synthesis
    handlers = ContextTab(suite, synthesis)
    with gr.Tab("Context labels", id="context"):
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                image = photo_input("context-image", height=320)
                run = gr.Button("List context", variant="primary", elem_id="list-context")
            with gr.Column(scale=1):
                status = gr.Markdown(elem_id="context-status", elem_classes=["status-line"])
                gr.Markdown(standin_note(suite, "labeller", "classifier"), elem_id="context-standin",
                            elem_classes=["standin-note"])
                heading = gr.Markdown(elem_id="main-object")
                labels = gr.Textbox(label="Context labels (edit freely: one per line)", lines=7,
                                    elem_id="context-labels")
                prompt = gr.Textbox(label=f"Generator prompt (context cut to {synthesis.context_max_chars} "
                                          "characters, as in the reference code)", interactive=False,
                                    elem_id="context-prompt")
        run.click(handlers.list_context, inputs=image, outputs=[labels, prompt, heading], api_name="context",
                  show_progress_on=status)
        labels.change(handlers.prompt_for, inputs=labels, outputs=prompt, api_name="prompt")
    return handlers
