"""Opening an image one tab shows in another: the Negative labels inspector (scored at once) or Noise optimisation
(prefilled with its context labels). A gallery keeps what it shows as `Shown` items; a click on one, or on a map
point, picks it (`opened`), and the chain `then_open` lays out does what the click action says."""
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


def opened(shown: Shown | None, action: str):
    """The picked image copied into the served folder: shown in the Negative labels tab ("inspect"), or kept for
    Noise optimisation ("boundary"); the inspector's image, the tab to select and the pick (action, copy)."""
    from ui.thumbnails import served_copy

    if shown is None or not shown.path:
        raise UserError("This image cannot be opened: it lies outside the data roots or cannot be read.")
    copy = str(served_copy(Path(shown.path)))
    if action == "inspect":
        return copy, gr.Tabs(selected="neglabel"), (action, copy)
    return gr.skip(), gr.skip(), (action, copy)


@shows_user_errors
def clicked(items: list[Shown], action: str, event: gr.SelectData):
    """The clicked gallery image, opened as `action` says."""
    return opened(items[event.index] if items and 0 <= event.index < len(items) else None, action)


def analysed_if(inspector: Inspector):
    """The Negative labels tab's scoring of its image, when the pick asked to inspect it."""
    def analysed(picked: tuple[str, str] | None, *inputs, progress=gr.Progress()):
        if not picked or picked[0] != "inspect":
            return [gr.skip()] * len(inspector.outputs)
        return inspector.analyse(*inputs, progress=progress)
    return analysed


def prefilled_if(noise: NoiseTab):
    """Noise optimisation prefilled with the picked image and its context labels, when the pick asked for that."""
    def prefilled(picked: tuple[str, str] | None, progress=gr.Progress()):
        if not picked or picked[0] != "boundary":
            return [gr.skip()] * 3
        return noise.prefill(picked[1], progress=progress)
    return prefilled


def then_open(event, picked: gr.State, inspector: Inspector, noise: NoiseTab, tabs: gr.Tabs) -> None:
    """After `event` (which set `picked` to (action, image) or None): the inspector scores the image, or Noise
    optimisation is prefilled with it."""
    event.then(analysed_if(inspector), inputs=[picked, *inspector.inputs], outputs=inspector.outputs,
               show_progress_on=inspector.status, api_visibility="private").then(
        prefilled_if(noise), inputs=[picked], outputs=[*noise.target, tabs], api_visibility="private")


def wire(gallery: gr.Gallery, items: gr.State, action: gr.Radio, inspector: Inspector, noise: NoiseTab,
         tabs: gr.Tabs) -> None:
    """A click on `gallery` (whose shown images `items` holds) does what `action` says."""
    picked = gr.State(None)
    then_open(gallery.select(clicked, inputs=[items, action], outputs=[inspector.image, tabs, picked],
                             api_visibility="private"), picked, inspector, noise, tabs)


@shows_user_errors
def point_opened(shown: Shown | None, action: str):
    """The map point just clicked (None when the selection was a lasso or a box: nothing opens), opened as `action`
    says."""
    if shown is None:
        return gr.skip(), gr.skip(), None
    return opened(shown, action)
