"""Opening an image one tab shows in another: the Negative labels inspector (scored at once) or Noise optimisation
(prefilled with its context labels). A gallery keeps what it shows as `Shown` items; a click picks one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from synood.errors import UserError

from .errors import shows_user_errors
from .neglabel_tab import Inspector
from .noise_tab import NoiseTab

CLICK_ACTIONS = [("inspects it (Negative labels)", "inspect"),
                 ("makes a boundary sample of it (Noise optimisation, prefilled)", "boundary")]


@dataclass
class Shown:
    """One image a gallery shows, kept so that a click can open it ("" when it cannot be opened)."""

    path: str
    caption: str


@shows_user_errors
def clicked(items: list[Shown], action: str, event: gr.SelectData):
    """The clicked gallery image, copied into the served folder: opened in the Negative labels tab ("inspect"), or
    kept (the last output) for Noise optimisation ("boundary")."""
    from ui.thumbnails import served_copy

    shown = items[event.index] if items and 0 <= event.index < len(items) else None
    if shown is None or not shown.path:
        raise UserError("This image cannot be opened: it lies outside the data roots or cannot be read.")
    copy = str(served_copy(Path(shown.path)))
    if action == "inspect":
        return copy, gr.Tabs(selected="neglabel"), ""
    return gr.skip(), gr.skip(), copy


def analysed_if(inspector: Inspector):
    """The Negative labels tab's scoring of its image, when the click asked to inspect it."""
    def analysed(action: str, *inputs, progress=gr.Progress()):
        if action != "inspect":
            return [gr.skip()] * len(inspector.outputs)
        return inspector.analyse(*inputs, progress=progress)
    return analysed


def prefilled_if(noise: NoiseTab):
    """Noise optimisation prefilled with the clicked image and its context labels, when the click asked for that."""
    def prefilled(action: str, path: str, progress=gr.Progress()):
        if action != "boundary" or not path:
            return [gr.skip()] * 3
        return noise.prefill(path, progress=progress)
    return prefilled


def wire(gallery: gr.Gallery, items: gr.State, action: gr.Radio, inspector: Inspector, noise: NoiseTab,
         tabs: gr.Tabs) -> None:
    """A click on `gallery` (whose shown images `items` holds) does what `action` says."""
    picked = gr.State("")
    gallery.select(clicked, inputs=[items, action], outputs=[inspector.image, tabs, picked],
                   api_visibility="private").then(
        analysed_if(inspector), inputs=[action, *inspector.inputs], outputs=inspector.outputs,
        show_progress_on=inspector.status, api_visibility="private").then(
        prefilled_if(noise), inputs=[action, picked], outputs=[*noise.target, tabs], api_visibility="private")
