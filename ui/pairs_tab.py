"""Synthetic pairs tab: browse a generation's manifest as ID image / synthetic image pairs, and open one in full.
The generation must lie under the app's data roots; images its manifest names elsewhere show as placeholders."""
from __future__ import annotations

import math
import re

import gradio as gr
import plotly.graph_objects as go

from synood.config import Config
from synood.data import manifest as manifests
from synood.data.manifest import Page, Pair, ParsedManifest
from synood.errors import UserError
from synood.models import Suite
from ui import thumbnails
from ui.access import DataRoots

from .errors import shows_user_errors
from .plots import optimisation_curve

INTRO = (
    "A **pair** is an in-distribution (ID) training image and the synthetic image `synood generate` made from it: "
    "the scene kept, the main object repainted. The classifier's **energy** E(x) = -logsumexp(logits) is lower the "
    "more confidently an image looks ID; the optimisation pushes the synthetic image's energy up toward the boundary "
    "m_out, and the **ID score** is NegLabel's S(x), near 1 when an image looks ID and near 0 when it looks OOD. "
    "Look for pairs whose energy rose and ID score fell while the scene still resembles the source: those are the "
    "near-boundary outliers the method trains on."
)
SORT_CHOICES = [("manifest order", "manifest"), ("energy after", "energy_after"),
                ("energy change (after - before)", "energy_change"), ("ID score after", "id_score_after"),
                ("class", "class"), ("negative label", "negative_label")]
PAGE_SIZES = [12, 24, 48, 96]
ALL_CLASSES = ("All classes", "")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def escape(text: object) -> str:
    """Text from the manifest, shown literally in Markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def caption(pair: Pair) -> str:
    """A gallery caption: class, energy before -> after, negative label."""
    return f"{pair.class_name} · E {pair.energy_before:.2f} → {pair.energy_after:.2f} · neg: {pair.negative_label}"


def page_line(page: Page, manifest: ParsedManifest, outside: int = 0) -> str:
    """Where the user is: "Page X of Y · N pairs shown of M", any lines the manifest reader skipped, and how many
    of the page's images lie outside the data roots."""
    line = f"Page **{page.number}** of {page.count} · {page.total:,} pairs shown of {len(manifest.pairs):,}"
    if manifest.skipped:
        line += f" · {manifest.skipped:,} manifest lines did not parse and were skipped"
    if outside:
        line += (f" · {outside:,} images on this page are outside the app's data roots and not shown (start the app "
                 "with --data-root DIR to allow their folder)")
    return line


def outward(value: float, up: bool) -> float:
    """`value` rounded to 2 decimals away from the data, so a range set from min and max keeps every pair."""
    hundredths = math.ceil(value * 100) if up else math.floor(value * 100)
    if (hundredths / 100 < value) if up else (hundredths / 100 > value):  # value * 100 itself was rounded
        hundredths += 1 if up else -1
    return hundredths / 100


def curve(pair: Pair, m_out: float) -> go.Figure:
    """Loss and energy over the pair's iterations (numbered from 1, as the Noise optimisation tab does), with
    the source's energy and m_out marked."""
    steps = pair.iterations
    return optimisation_curve([s.index + 1 for s in steps], [s.loss for s in steps], [s.energy for s in steps],
                              pair.energy_before, m_out, "m_out (this app's config)")


def details(pair: Pair) -> str:
    """Everything the manifest says about one pair, as a Markdown table."""
    rows = [
        ("Pair id", pair.id),
        ("Class", f"{pair.class_name} ({pair.class_id}, index {pair.class_index})"),
        ("Context", ", ".join(pair.context) or "none"),
        ("Prompt", pair.prompt), ("Seed", pair.seed),
        ("Energy E(x), before → after", f"{pair.energy_before:.3f} → {pair.energy_after:.3f} "
                                        f"(change {pair.energy_change:+.3f})"),
        ("ID score S(x), before → after", f"{pair.id_score_before:.3f} → {pair.id_score_after:.3f}"),
        ("Negative label", f"{pair.negative_label} (similarity {pair.negative_similarity:.3f})"),
        ("Predicted, before → after", f"{pair.predicted_before} → {pair.predicted_after}"),
        ("Generator", pair.generator), ("Classifier", pair.classifier),
        ("Source file", pair.source), ("Synthetic file", pair.image),
    ]
    lines = [f"| **{name}** | {escape(value)} |" for name, value in rows]
    return "\n".join([lines[0], "|---|---|", *lines[1:]])  # the pair id heads the table


def load_manifest(path: str, roots: DataRoots) -> ParsedManifest:
    """The manifest of a generation folder or manifest file under `roots`; a UserError (AccessError, PairsError)
    says why not."""
    return manifests.load_manifest(roots.check(path))


class PairsTab:
    """The tab's handlers, callable without a page: the data roots they read under and the config's m_out."""

    def __init__(self, roots: DataRoots, m_out: float):
        self.roots, self.m_out = roots, m_out

    def loaded(self, manifest_file: str) -> ParsedManifest:
        """The manifest already loaded on the page (its path), read again."""
        if not manifest_file:
            raise UserError("Load a generation folder or manifest first.")
        return load_manifest(manifest_file, self.roots)

    @shows_user_errors
    def show(self, manifest_file: str, class_id: str, energy_min: float | None, energy_max: float | None, label: str,
             sort: str, order: str, size: int, number: float | None = 1):
        """One page of the filtered, sorted pairs: gallery, the page line, the page's pair ids and its number."""
        manifest = self.loaded(manifest_file)
        inside = self.roots.contains
        chosen = manifests.filter_pairs(manifest.pairs, class_id or None, energy_min, energy_max, label or "")
        chosen = manifests.sort_pairs(chosen, sort, descending=order == "descending")
        page = manifests.paginate(chosen, int(number or 1), int(size))
        try:
            files = thumbnails.thumbnails(page.pairs, inside=inside)
        except OSError as exc:
            raise UserError(f"Cannot write thumbnails under {thumbnails.thumbnail_dir()}: {exc.strerror or exc}") \
                from None
        gallery = [(str(path), caption(pair)) for path, pair in zip(files, page.pairs)]
        outside = sum(not inside(path) for pair in page.pairs for path in (pair.source, pair.image))
        return gallery, page_line(page, manifest, outside), [pair.id for pair in page.pairs], page.number

    @shows_user_errors
    def previous_page(self, manifest_file: str, class_id: str, energy_min: float | None, energy_max: float | None,
                      label: str, sort: str, order: str, size: int, number: float | None):
        """The page before `number`."""
        return self.show(manifest_file, class_id, energy_min, energy_max, label, sort, order, size, (number or 1) - 1)

    @shows_user_errors
    def next_page(self, manifest_file: str, class_id: str, energy_min: float | None, energy_max: float | None,
                  label: str, sort: str, order: str, size: int, number: float | None):
        """The page after `number`."""
        return self.show(manifest_file, class_id, energy_min, energy_max, label, sort, order, size, (number or 1) + 1)

    @shows_user_errors
    def load(self, path: str, sort: str, order: str, size: int):
        """Open a generation: its manifest's path, filters reset to cover every pair, the first page, and the pair
        view emptied."""
        if not (path or "").strip():
            raise UserError("Give a generation folder or its manifest.jsonl.")
        manifest = load_manifest(path, self.roots)
        low, high = manifest.energy_range()
        low, high = outward(low, up=False), outward(high, up=True)
        choices = [ALL_CLASSES] + [(f"{name} ({class_id})", class_id) for class_id, name in manifest.classes()]
        view = self.show(str(manifest.path), "", low, high, "", sort, order, size, 1)
        return (str(manifest.path), gr.update(choices=choices, value=""), low, high, "", *view,
                None, None, None, "", "")

    @staticmethod
    @shows_user_errors
    def picked(ids: list[str], event: gr.SelectData) -> str:
        """The id of the pair clicked in the gallery."""
        return ids[event.index]

    @shows_user_errors
    def open_pair(self, manifest_file: str, pair_id: str):
        """One pair in full: its source and synthetic images (placeholders for what cannot be shown), its curve and
        everything the manifest says about it."""
        pair = self.loaded(manifest_file).get(pair_id.strip())
        inside = self.roots.contains
        return (thumbnails.pair_image(pair.source, "source image", inside),
                thumbnails.pair_image(pair.image, "synthetic image", inside),
                curve(pair, self.m_out), details(pair))


def build(suite: Suite, config: Config, roots: DataRoots) -> PairsTab:
    """Lay out the tab and wire its events to a PairsTab's handlers (returned)."""
    handlers = PairsTab(roots, config.synthesis.m_out)
    with gr.Tab("Synthetic pairs", id="pairs"):
        gr.Markdown(INTRO)
        manifest_file = gr.State("")
        page_ids = gr.State([])
        with gr.Row():
            path = gr.Textbox(label="Generation folder or its manifest.jsonl", scale=5, elem_id="pairs-path",
                              placeholder="/path/to/generation  (written by synood generate)")
            load_button = gr.Button("Load", variant="primary", scale=1, elem_id="pairs-load")
        status = gr.Markdown(elem_id="pairs-status", elem_classes=["status-line"])
        with gr.Row():
            class_id = gr.Dropdown([ALL_CLASSES], value="", label="Class", elem_id="pairs-class")
            energy_min = gr.Number(label="Energy after, from", elem_id="pairs-energy-min")
            energy_max = gr.Number(label="Energy after, to", elem_id="pairs-energy-max")
            label = gr.Textbox(label="Label contains (negative, class or context; Enter applies)",
                               elem_id="pairs-label")
        with gr.Row():
            sort = gr.Dropdown(SORT_CHOICES, value="manifest", label="Sort by", elem_id="pairs-sort")
            order = gr.Radio(["ascending", "descending"], value="ascending", label="Order", elem_id="pairs-order")
            size = gr.Dropdown(PAGE_SIZES, value=24, label="Pairs per page", elem_id="pairs-size")
            apply = gr.Button("Apply filters", elem_id="pairs-apply")
        with gr.Row():
            prev_button = gr.Button("◀ Previous", size="sm", scale=1, elem_id="pairs-prev")
            number = gr.Number(1, precision=0, minimum=1, label="Page (Enter jumps)", scale=1,
                               elem_id="pairs-page-number")
            next_button = gr.Button("Next ▶", size="sm", scale=1, elem_id="pairs-next")
            where = gr.Markdown(elem_id="pairs-page")
        gallery = gr.Gallery(label="Pairs: source | synthetic (click one to open it)", columns=4, object_fit="contain",
                             allow_preview=False, interactive=False, elem_id="pairs-gallery")
        with gr.Row():
            source = gr.Image(type="pil", format="png", label="ID image (source)", interactive=False, height=400,
                              elem_id="pairs-source")
            synthetic = gr.Image(type="pil", format="png", label="Synthetic image", interactive=False, height=400,
                                 elem_id="pairs-synthetic")
        with gr.Row():
            with gr.Column(scale=1):
                pair_id = gr.Textbox(label="Pair id (the source's path in the training folder; Enter opens it)",
                                     elem_id="pairs-id")
                detail = gr.Markdown(elem_id="pairs-detail")
            plot = gr.Plot(label="Loss and energy", elem_id="pairs-curve", scale=1)

        filters = [manifest_file, class_id, energy_min, energy_max, label, sort, order, size]
        view = [gallery, where, page_ids, number]
        pair_view = [source, synthetic, plot, detail]
        gr.on([load_button.click, path.submit], handlers.load, inputs=[path, sort, order, size],
              outputs=[manifest_file, class_id, energy_min, energy_max, label, *view, *pair_view, pair_id],
              api_name="pairs_load", show_progress_on=status)
        gr.on([apply.click, label.submit, energy_min.submit, energy_max.submit, class_id.input, sort.input,
               order.input, size.input], handlers.show, inputs=filters, outputs=view, api_name="pairs_filter", show_progress_on=status)
        number.submit(handlers.show, inputs=[*filters, number], outputs=view, api_name="pairs_page", show_progress_on=status)
        prev_button.click(handlers.previous_page, inputs=[*filters, number], outputs=view, api_visibility="private", show_progress_on=status)
        next_button.click(handlers.next_page, inputs=[*filters, number], outputs=view, api_visibility="private", show_progress_on=status)
        gallery.select(handlers.picked, inputs=page_ids, outputs=pair_id, api_visibility="private", show_progress="hidden").success(
            handlers.open_pair, inputs=[manifest_file, pair_id], outputs=pair_view, api_visibility="private", show_progress_on=status)
        pair_id.submit(handlers.open_pair, inputs=[manifest_file, pair_id], outputs=pair_view, api_name="pairs_open",
                       show_progress_on=status)
    return handlers
