"""Models tab: which suite runs, what each component is, where it loads from; load on demand."""
from __future__ import annotations

import html

import gradio as gr

from synood.models import Suite
from synood.models.interfaces import ROLE_TITLES, ROLES
from synood.models.memory import MARGIN, OVERHEAD, size
from synood.models.suites import NO_OWN_WEIGHTS

from .errors import shows_user_errors

INTRO = (
    "Every feature runs on a **suite** of four models: an image/text encoder that scores images against "
    "labels, an energy classifier whose energy says how in-distribution an image looks, a context labeller "
    "that names what surrounds the main object, and a generator that repaints the image. Components load "
    "on first use; **Load all components** loads them now and fills in their parameter counts."
)


def components_table(suite: Suite) -> str:
    """Two HTML tables: each component's identity, weights, state, source and parameters; then its size (bytes on
    disk and to download), the memory estimate per dtype and the dtype it loads at on this device
    (synood.models.memory)."""
    found = suite.availability()
    loaded = suite.loaded()
    rows, sizes = [], []
    for role in ROLES:
        spec, info = suite.spec.components[role], loaded[role]
        weights = ("none of its own (uses the offline EfficientNet-Lite0 and stand-in encoder)"
                   if spec.family in NO_OWN_WEIGHTS else "random weights" if spec.random else "pretrained")
        decided = suite.plan(role)
        counted = decided.footprint
        params = f"{info.parameters:,}" if info else "not loaded yet"
        cells = [ROLE_TITLES[role], info.name if info else spec.describe(), weights,
                 "loaded" if info else found[role].state, info.source if info else found[role].where, params]
        css = ' class="random"' if spec.random else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        dtype = suite.dtypes.get(role) or decided.dtype + ("" if decided.fits else
                                                           " (does not fit: loading it is refused)")
        cells = [ROLE_TITLES[role], "-", "-", "-", "-", "-", "-", dtype + (f"; {decided.note}" if decided.note else ""),
                 "-"]
        if counted is not None:
            cells[2] = size(counted.disk_bytes) if counted.disk_bytes is not None else "-"
            cells[3] = f"about {size(counted.download_bytes)}" if counted.download_bytes else "-"
            if counted.parameters:
                cells[1], cells[8] = f"{counted.parameters:,}", counted.source
                cells[4:7] = map(size, counted.estimates().values())
        sizes.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("Role", "Component", "Weights", "State", "Source", "Parameters"))
    memory = "".join(f"<th>{h}</th>" for h in ("Role", "Parameters + buffers (counted)", "On disk", "Download",
                                               "Memory est. fp32", "bf16", "fp16", "Dtype here", "Counted from"))
    return (f'<table class="components" data-suite="{html.escape(suite.name)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            f'<div class="components-scroll"><table class="memory"><caption>Size and memory (estimates: parameters '
            f"x bytes per element x {1 + MARGIN:g} + {size(OVERHEAD)}; a load that does not fit is refused)</caption>"
            f"<thead><tr>{memory}</tr></thead><tbody>{''.join(sizes)}</tbody></table></div>")


class ModelsTab:
    """The tab's handlers, callable without a page: the suite they show and load."""

    def __init__(self, suite: Suite):
        self.suite = suite

    @shows_user_errors
    def table(self) -> str:
        """The components table as it stands now."""
        return components_table(self.suite)

    @shows_user_errors
    def load_all(self, progress=gr.Progress()) -> tuple[str, str]:
        """Load every component (a missing model is one message naming it), then the table and a line saying so."""
        done = []
        for i, role in enumerate(ROLES):
            progress(i / len(ROLES), desc=f"Loading {ROLE_TITLES[role].lower()}")
            self.suite.get(role)
            done.append(ROLE_TITLES[role])
        return components_table(self.suite), f"Loaded: {', '.join(done)}."


def build(suite: Suite) -> ModelsTab:
    """Lay out the tab and wire its events to a ModelsTab's handlers (returned)."""
    handlers = ModelsTab(suite)
    with gr.Tab("Models", id="models") as tab:
        gr.Markdown(INTRO)
        gr.Markdown(f"**Suite `{suite.name}`**: {suite.spec.description}", elem_id="suite-description")
        table = gr.HTML(components_table(suite), elem_id="components-table")
        load = gr.Button("Load all components", variant="primary", elem_id="load-components")
        status = gr.Markdown(elem_id="load-status")
        load.click(handlers.load_all, outputs=[table, status], api_name="load_components", show_progress_on=status)
        refresh = gr.Button("Refresh", size="sm", elem_id="refresh-components")
        refresh.click(handlers.table, outputs=table, api_name="components")
        tab.select(handlers.table, outputs=table, api_visibility="private", show_progress="hidden")
    return handlers
