"""Feature map tab: ID, synthetic and OOD images as points, by UMAP with an instant PCA preview, in the encoder's
feature space or after the fine-tuned projection; hovering a point shows its image, label and score. Folders, the
generation and the detector file must lie under the data roots (detector files also in the app's runs folder); images
in them that lead outside are skipped and named."""
from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np

from synood.pipelines import featuremap
from ui.access import DataRoots, leads_outside
from synood.config import Config
from synood.data.images import find_images
from synood.models import Suite
from synood.data.manifest import load_manifest

from . import featuremap_view
from .detector import DetectorHolder
from .errors import shows_user_errors
from .featuremap_view import GROUPS, Point
from .neglabel_tab import Inspector
from .noise_tab import NoiseTab
from .notes import standin_note
from .opening import CLICK_ACTIONS, Shown, point_opened, then_open, wire
from .pairs_tab import escape
from .thumbnails import thumbnail_dir
from synood.errors import UserError

if TYPE_CHECKING:  # torch and the detector load on first use
    import plotly.graph_objects as go
    import torch

    from synood.pipelines.detect import Detector

INTRO = (
    "Each point is an image: **ID** images of the training classes, **synthetic** near-boundary images from a "
    "generation, and **OOD** images. Close points have similar features. Before the projection they are the frozen "
    "encoder's features; after it, a fine-tuned detector's projection should pull the synthetic and OOD points away "
    "from the ID ones. Colour by a **score** (NegLabel's S(x), MCM, or with a detector file the tuned SynOOD "
    "score; every registered score that reads image features) to see which images look ID: higher = more ID. A PCA preview appears at once while UMAP computes (the app's first UMAP also compiles numba code, "
    "which starts when this tab opens); hover a point to see its image and click it to inspect it (or make a boundary "
    "sample of it, as chosen below the map); select points with the lasso or box tool above the map to see them all "
    "below, and click one there (double-click the map to clear a selection before clicking a point inside it)."
)
SPACE_CHOICES = [("encoder features (before the projection)", "before"),
                 ("after the projection (needs a detector file)", "after")]
SPACE_TITLES = {"before": "encoder features (before the projection)", "after": "features after the projection"}
DEFAULT_CAP = 2000
MAX_CAP = 20_000  # per group: a 60k-point UMAP takes minutes on 2 cores
MAX_SELECTED = 48  # selected points shown in the gallery
SHOWN_PROBLEMS = 5
COMPILING = "7-25 s on 2 idle cores, more on busy ones; once per app start"
STOPPED_ENCODING = "**Stopped** while encoding the images: no map was drawn."
STOPPED_UMAP = "**Stopped** while UMAP was computing: the PCA preview stays."
HOVER_SCRIPT = Path(__file__).with_name("featuremap_hover.js")
PANEL = ('<div class="featuremap-panel"><img class="featuremap-thumb" alt="" hidden>'
         '<div class="featuremap-label">Hover a point to see its image</div>'
         '<div class="featuremap-meta"></div><div class="featuremap-file"></div></div>')


class MapError(UserError, ValueError):
    """Inputs the map cannot use; the message says which and why."""


@dataclass
class Drawing:
    """A map being drawn for one page: the flag Stop sets, and what the status says if it does now."""

    halted: threading.Event
    phase: str = STOPPED_ENCODING


class Stopped(Exception):
    """Stop was pressed while the images were being encoded (a long step with no yield to cancel at)."""


@dataclass(frozen=True)
class Source:
    """One image to map: its file, its group, and its label ("" for ID: its class, found once it is encoded)."""

    path: Path
    group: str
    label: str


@dataclass(frozen=True)
class Encoded:
    """The images that could be read, ready to map: their features and points, and what to tell the user."""

    features: torch.Tensor  # (N, D) unit-norm, in the space being mapped
    points: tuple[Point, ...]
    paths: list[Path]
    hashes: list[str]  # each image's content hash: its thumbnail's key
    score_titles: dict[str, str]  # the scores each point has, name -> title, the map's main one first
    notes: list[str]
    problems: list[str]


@dataclass(frozen=True)
class MapView:
    """A drawn map, kept so that re-colouring it needs no computation."""

    xy: np.ndarray
    points: tuple[Point, ...]
    title: str
    score_titles: dict[str, str]
    files: tuple[Path, ...] = ()  # each point's image file
    thumbs: tuple[Path, ...] = ()  # each point's thumbnail file (in the served folder)

    def figure(self, colour: str) -> go.Figure:
        return featuremap_view.figure(self.xy, self.points, colour, self.title, self.score_titles)

    def selected(self, text: str) -> tuple[list[tuple[str, str]], list[Shown], str, Shown | None]:
        """The points a lasso, box or click picked (`text`, as the page's script sends them: their indices as a JSON
        list, or {"points": [index], "click": stamp} for a click): the gallery (thumbnail, caption), its items, a
        line saying how many, and the clicked point (None for a lasso or box), which opens at once."""
        try:
            sent = json.loads(text or "[]")
            click = isinstance(sent, dict) and bool(sent.get("click"))
            indices = [int(i) for i in (sent.get("points", []) if isinstance(sent, dict) else sent)]
        except (ValueError, TypeError, AttributeError):
            raise UserError("The selection could not be read: select the points again.") from None
        chosen = [i for i in dict.fromkeys(indices) if 0 <= i < len(self.points)]
        shown = chosen[:MAX_SELECTED]
        main = next(iter(self.score_titles), "")
        items = []
        for i in shown:
            featuremap_view.thumbnail(self.files[i], self.thumbs[i])  # made now for a big map (a hit otherwise)
            point = self.points[i]
            caption = f"{point.group} · {point.label}" + (f" · {point.scores[main]:.3f}" if main in point.scores
                                                           else "")
            items.append((str(self.thumbs[i]), Shown(str(self.files[i]), caption)))
        more = f" (the first {MAX_SELECTED} shown)" if len(chosen) > MAX_SELECTED else ""
        note = (f"**{len(chosen):,} points selected**{more}: click one below." if chosen else
                "No point selected: draw a lasso or a box on the map (the tools above it), or click a point.")
        clicked = items[0][1] if click and items else None
        return [(thumb, shown.caption) for thumb, shown in items], [shown for _, shown in items], note, clicked


def colour_choices() -> list[tuple[str, str]]:
    """"group", then every registered score the map can compute from image features alone (a trained one needs a
    detector file) and the NegLabel pool (the map mines no other), by title."""
    from synood.method.scorers import SCORERS

    return [("group", "group"), *((cls.title, name) for name, cls in SCORERS.items()
                                  if cls.needs <= {"features"} and cls.pool == "neglabel")]


def map_scores(features: torch.Tensor, detector: Detector, tuned: Any, combination: str) -> dict[str, torch.Tensor]:
    """Every registered score of raw image `features` that needs nothing else, the tuned detector's first when there
    is one (the map's main score); the trained ones need `tuned`."""
    from synood.method.scorers import SCORERS, build

    inputs = detector.inputs(features)
    names = [name for name, cls in SCORERS.items() if cls.needs <= {"features"} and cls.pool == "neglabel"
             and (cls.kind != "trained" or tuned is not None)]
    names.sort(key=lambda name: SCORERS[name].kind != "trained")  # stable: the tuned score first, then in order
    return {name: build(name, tuned, combination).score(inputs) for name in names}


def folder_sources(folder: str, group: str, label_by_name: bool, roots: DataRoots) -> tuple[list[Source], list[str]]:
    """Every image under `folder`, which must lie under `roots` (OOD images labelled by file name), and a message
    per file in it that leads outside them (skipped)."""
    paths, outside = roots.split(find_images(roots.check(folder)))
    sources = [Source(path, group, path.name if label_by_name else "") for path in paths]
    return sources, list(map(leads_outside, outside))


def synthetic_sources(generation: str, roots: DataRoots) -> tuple[list[Source], list[str]]:
    """The synthetic images of a generation under `roots`, labelled by negative label and class, and a message per
    image its manifest names outside them (skipped)."""
    manifest = load_manifest(roots.check(generation))
    kept, outside = roots.split([pair.image for pair in manifest.pairs])
    allowed = set(kept)
    return ([Source(pair.image, "synthetic", f"{pair.negative_label} (from {pair.class_name})")
             for pair in manifest.pairs if pair.image in allowed], list(map(leads_outside, outside)))


def gather(id_folder: str, generation: str, ood_folder: str, cap: int,
           roots: DataRoots) -> tuple[list[Source], list[str], list[str]]:
    """At most `cap` images of each group given (spread evenly over each), a note per short or capped group, and a
    message per file skipped because it leads outside `roots`."""
    found: dict[str, list[Source]] = {}
    problems: list[str] = []
    if id_folder.strip():
        found["ID"], skipped = folder_sources(id_folder, "ID", False, roots)
        problems += skipped
    if generation.strip():
        found["synthetic"], skipped = synthetic_sources(generation, roots)
        problems += skipped
    if ood_folder.strip():
        found["OOD"], skipped = folder_sources(ood_folder, "OOD", True, roots)
        problems += skipped
    if not found:
        raise MapError("Give at least one of: an ID image folder, a generation folder (or its manifest), "
                       "an OOD image folder.")
    chosen, notes = [], []
    for group, items in found.items():
        kept = [items[i] for i in featuremap.cap_indices(len(items), cap)]
        if len(kept) < len(items):
            notes.append(f"{group}: {len(kept):,} of {len(items):,} images (the cap per group)")
        elif not items:
            notes.append(f"{group}: no images found")
        chosen += kept
    if not chosen:
        raise MapError("No images to map: " + "; ".join(notes + problems[:SHOWN_PROBLEMS]))
    return chosen, notes, problems


def id_labels(paths: list[Path], features: torch.Tensor, detector: Detector) -> list[str]:
    """An ID image's class when its folder names one as `synood select` reads it (a WNID, or a class name such as
    "Egyptian_Mau"), else its nearest ID label."""
    from synood.data.classnames import display_names
    from synood.data.selection import folder_class, imagenet_classes

    classes, names = imagenet_classes(), display_names(detector.id_names)
    nearest = (features @ detector.id_features.T).argmax(dim=1).tolist()
    named = [folder_class(path.parent.name, classes) for path in paths]
    return [names[found[0]] if found else f"{names[index]} (nearest label)" for found, index in zip(named, nearest)]


def wait(job: Future, seconds: float) -> bool:
    """Whether `job` finished within `seconds`."""
    return not futures.wait([job], timeout=seconds).not_done


def fitting_status(points: tuple[Point, ...], seconds: float, compiled: bool, notes: list[str],
                   problems: list[str]) -> str:
    """The status while UMAP computes: the preview's headline, the time so far and, on first use, why it is slow."""
    line = f"UMAP: {seconds:.0f} s so far" + ("" if compiled else f"; compiling numba on first use ({COMPILING})")
    return report(f"**PCA preview**; UMAP computing... ({counts(points)})", [line, *notes], problems)


def counts(points: tuple[Point, ...]) -> str:
    """"ID 12 · synthetic 0 · OOD 10": how many points of each group are shown."""
    return " · ".join(f"{group} {sum(p.group == group for p in points):,}" for group in GROUPS)


def report(headline: str, notes: list[str], problems: list[str]) -> str:
    """The status line, then the capped groups and the files that could not be used."""
    lines = [headline] + [f"- {escape(note)}" for note in notes]
    if problems:
        lines.append(f"- {len(problems):,} files skipped: " + "; ".join(escape(p) for p in problems[:SHOWN_PROBLEMS])
                     + (" ..." if len(problems) > SHOWN_PROBLEMS else ""))
    return "\n".join(lines)


class FeatureMapTab:
    """The tab's handlers, callable without a page: the shared detector, the app's config and data roots, and each
    browser session's map being drawn (which Stop halts)."""

    def __init__(self, holder: DetectorHolder, config: Config, roots: DataRoots):
        self.holder, self.config, self.roots = holder, config, roots
        self.detector_roots = roots.with_runs(config.paths.home)
        self.drawings: dict[str | None, Drawing] = {}  # by session hash

    def inputs(self, id_folder: str, generation: str, ood_folder: str, checkpoint_file: str, space: str,
               cap: int) -> tuple[list[Source], list[str], list[str], Path | None]:
        """The images to map, the notes and skipped files, and the detector file: every check that needs no model,
        so that a bad folder or file is refused before anything on screen changes."""
        if space == "after" and not checkpoint_file.strip():
            raise MapError("The map after the projection needs a fine-tuned detector file (.safetensors).")
        chosen, notes, outside = gather(id_folder, generation, ood_folder, cap, self.roots)
        return chosen, notes, outside, self.detector_roots.check(checkpoint_file) if space == "after" else None

    def prepare(self, chosen: list[Source], notes: list[str], outside: list[str], detector_file: Path | None,
                halted: threading.Event, progress: gr.Progress) -> Encoded:
        """Encode the images (Stopped when `halted` is set between batches), label the ID ones, score every point."""
        from synood.data.features import image_features
        from synood.method.scorers import SCORERS, SynOOD
        from synood.records import checkpoint

        detector = self.holder.get(progress)
        tuned = None
        if detector_file is not None:
            tuned = checkpoint.load_detector(detector_file)
            tuned.check(detector.encoder.identity, [label.word for label in detector.negatives])

        def encoded(done: int, total: int) -> None:
            if halted.is_set():
                raise Stopped
            progress(done / max(total, 1), desc=f"Image features: {done:,} of {total:,} (cached ones are free)")

        found = image_features(detector.encoder, [source.path for source in chosen], progress=encoded)
        if not found.paths:
            raise MapError("None of the images could be read: " + "; ".join(found.problems[:SHOWN_PROBLEMS]))
        kept, position = [], 0  # found.paths is `chosen` minus the unreadable files, in order
        for source in chosen:
            if position < len(found.paths) and found.paths[position] == source.path:
                kept.append(source)
                position += 1
        features = found.unit
        ids = [i for i, source in enumerate(kept) if source.group == "ID"]
        for i, label in zip(ids, id_labels([kept[i].path for i in ids], features[ids], detector)):
            kept[i] = Source(kept[i].path, "ID", label)
        found_scores = map_scores(found.features, detector, tuned, self.config.finetune.combination)
        if tuned is not None:
            features = SynOOD(tuned, self.config.finetune.combination).project(found.features)
        values = {name: score.tolist() for name, score in found_scores.items()}
        points = tuple(Point(source.group, source.label, {name: v[i] for name, v in values.items()}, source.path.name,
                             featuremap_view.file_url(featuremap_view.thumbnail_path(content)))
                       for i, (source, content) in enumerate(zip(kept, found.hashes)))
        titles = {name: SCORERS[name].title for name in found_scores}
        return Encoded(features, points, found.paths, found.hashes, titles, notes, outside + found.problems)

    @shows_user_errors
    def draw(self, id_folder: str, generation: str, ood_folder: str, checkpoint_file: str, space: str, colour: str,
             cap: float | None, request: gr.Request, progress=gr.Progress()):
        """Draw the map, yielding (figure, status, view): a PCA preview at once, then UMAP; a bad input or model
        error is a warning and a "No map" status, with the map on screen kept."""
        started = time.perf_counter()
        featuremap.warm_up_in_background()  # if opening the tab did not start it: numba compiles while images encode
        try:
            chosen = self.inputs(id_folder or "", generation or "", ood_folder or "", checkpoint_file or "", space,
                                 max(int(cap or DEFAULT_CAP), 1))
        except UserError as exc:  # bad input: one message in the status line, the map stays
            gr.Warning(str(exc))
            yield gr.skip(), f"**No map:** {escape(exc)}", gr.skip()
            return
        drawing = self.drawings[request.session_hash] = Drawing(threading.Event())
        background = ThreadPoolExecutor(max_workers=2)  # thumbnails and the UMAP fit, while this generator reports
        try:
            yield None, "Reading and encoding the images...", None  # the earlier map, hover panel and status go
            try:
                encoded = self.prepare(*chosen, drawing.halted, progress)
            except Stopped:
                yield gr.skip(), STOPPED_ENCODING, gr.skip()
                return
            except UserError as exc:
                gr.Warning(str(exc))
                yield gr.skip(), f"**No map:** {escape(exc)}", gr.skip()
                return
            points, notes, where = encoded.points, list(encoded.notes), SPACE_TITLES[space]
            files = tuple(encoded.paths)
            thumbs = tuple(featuremap_view.thumbnail_path(content) for content in encoded.hashes)
            view = MapView(featuremap.pca_2d(encoded.features), points, f"PCA of {where}", encoded.score_titles,
                           files, thumbs)
            eager = len(points) <= featuremap_view.EAGER_THUMBNAILS  # beyond, thumbnails only for what is shown
            thumbnails = background.submit(featuremap_view.thumbnails, encoded.paths if eager else [],
                                           encoded.hashes if eager else [])
            if not eager:
                notes.append(f"{len(points):,} points: drawn with WebGL, and thumbnails are made only for the points "
                             "you select (hovering shows a point's label and score)")
            elif len(points) > featuremap_view.WEBGL_POINTS:
                notes.append(f"{len(points):,} points: drawn with WebGL")
            if len(points) <= featuremap.NEIGHBOURS:
                k = featuremap.NEIGHBOURS
                headline = (f"**PCA** of {len(points)} points ({counts(points)}): UMAP needs more than {k} (with "
                            f"fewer, each point's {k} neighbours are all the others: it would add nothing to PCA), so "
                            "this is PCA only.")
            else:
                xy = featuremap.cached_umap(featuremap.umap_key(encoded.features))
                compiled, mapped = featuremap.umap_compiled(), time.perf_counter()
                if xy is None:  # a PCA preview, then the status every second until UMAP is done (or Stop)
                    drawing.phase = STOPPED_UMAP
                    fitting = background.submit(featuremap.umap_2d, encoded.features)
                    yield view.figure(colour), fitting_status(points, 0, compiled, notes, encoded.problems), view
                    while not wait(fitting, 1.0):
                        if drawing.halted.is_set():
                            return
                        yield gr.skip(), fitting_status(points, time.perf_counter() - mapped, compiled, notes,
                                                        encoded.problems), gr.skip()
                    xy = fitting.result()
                    if drawing.halted.is_set():
                        return
                view = MapView(xy, points, f"UMAP of {where}", encoded.score_titles, files, thumbs)
                headline = (f"**UMAP** of {len(points):,} points ({counts(points)}) in "
                            f"{time.perf_counter() - mapped:.1f} s; {time.perf_counter() - started:.1f} s in all"
                            + ("." if compiled else f", including numba's one-time compile ({COMPILING})."))
            try:
                thumbnails.result()
            except OSError as exc:
                notes.append(f"thumbnails could not be written under {thumbnail_dir()}: "
                             f"{exc.strerror or exc}")
            yield view.figure(colour), report(headline, notes, encoded.problems), view
        finally:
            background.shutdown(wait=False)  # a stopped UMAP fit finishes on its own (numba cannot be interrupted)
            if self.drawings.get(request.session_hash) is drawing:
                del self.drawings[request.session_hash]

    @shows_user_errors
    def halt(self, request: gr.Request):
        """Stop this page's map: the status says so at once; encoding ends after its batch, a UMAP fit is left."""
        drawing = self.drawings.get(request.session_hash)
        if drawing is None:
            return gr.skip()
        drawing.halted.set()
        return drawing.phase

    @shows_user_errors
    def closed(self, request: gr.Request) -> None:
        """The page was closed or reloaded: its map, which no one will see, stops."""
        self.halt(request)

    @staticmethod
    @shows_user_errors
    def select(view: MapView | None, text: str):
        """The gallery of the points selected on the map (the page's script sends their indices)."""
        if view is None:
            return [], [], "Draw a map first.", None
        return view.selected(text)

    @staticmethod
    @shows_user_errors
    def recolour(view: MapView | None, colour: str):
        """The drawn map coloured by a group or another score, with nothing computed again."""
        if view is None:
            return gr.skip()
        if colour != "group" and colour not in view.score_titles:
            gr.Warning("This map has no such score: a trained score needs a fine-tuned detector file; draw the map "
                       "again with one.")
        return view.figure(colour)



def build(suite: Suite, config: Config, roots: DataRoots, inspector: Inspector | None = None,
          noise: NoiseTab | None = None, tabs: gr.Tabs | None = None) -> FeatureMapTab:
    """Lay out the tab and wire its events to a FeatureMapTab's handlers (returned); a point selected on the map and
    clicked in the gallery below opens in `inspector` or `noise`."""
    handlers = FeatureMapTab(DetectorHolder.shared(suite, config), config, roots)
    with gr.Tab("Feature map", id="featuremap") as tab:
        gr.Markdown(INTRO)
        view = gr.State(None)
        with gr.Row():
            id_folder = gr.Textbox(label="ID image folder", placeholder="/path/to/train (class sub-folders or flat)",
                                   elem_id="featuremap-id")
            generation = gr.Textbox(label="Generation folder or its manifest.jsonl (synthetic images)",
                                    placeholder="/path/to/generation", elem_id="featuremap-generation")
            ood_folder = gr.Textbox(label="OOD image folder", placeholder="/path/to/ood", elem_id="featuremap-ood")
        with gr.Row():
            checkpoint_file = gr.Textbox(label="Fine-tuned detector (.safetensors; for the map after the projection)",
                                         placeholder="/path/to/detector.safetensors", elem_id="featuremap-checkpoint")
            space = gr.Radio(SPACE_CHOICES, value="before", label="Space", elem_id="featuremap-space")
            colour = gr.Radio(colour_choices(), value="group", label="Colour by", elem_id="featuremap-colour")
            cap = gr.Number(DEFAULT_CAP, precision=0, minimum=1, maximum=MAX_CAP,
                            label="Points per group, at most", elem_id="featuremap-cap")
        with gr.Row():
            start = gr.Button("Draw the map", variant="primary", elem_id="featuremap-run")
            stop = gr.Button("Stop", variant="stop", elem_id="featuremap-stop")
        status = gr.Markdown(elem_id="featuremap-status")
        note = standin_note(suite, "encoder")
        if note:
            gr.Markdown(note, elem_id="featuremap-standin", elem_classes=["standin-note"])
        with gr.Row():
            plot = gr.Plot(label="Feature map", elem_id="featuremap-plot", scale=3)
            gr.HTML(PANEL, js_on_load=HOVER_SCRIPT.read_text(), elem_id="featuremap-hover", scale=1, min_width=200)
        selection = gr.Textbox(elem_id="featuremap-selection", elem_classes=["offscreen"], label="selected points",
                               container=False)  # the page's script writes the selected points' indices here
        selected_note = gr.Markdown("Select points with the lasso or box tool above the map (or click one) to see "
                                    "their images here.", elem_id="featuremap-selected-note")
        action = gr.Radio(CLICK_ACTIONS, value="inspect", label="Clicking a point on the map, or an image below,",
                          elem_id="featuremap-click-action")
        items = gr.State([])
        gallery = gr.Gallery(label="Selected points", columns=8, height="auto", object_fit="contain",
                             allow_preview=False, elem_id="featuremap-selected")
        point = gr.State(None)  # the point clicked on the map, if the selection was a click
        selecting = selection.change(handlers.select, inputs=[view, selection],
                                     outputs=[gallery, items, selected_note, point], api_name="featuremap_select",
                                     show_progress="hidden", trigger_mode="always_last")
        if inspector is not None and noise is not None and tabs is not None:
            wire(gallery, items, action, inspector, noise, tabs)
            picked = gr.State(None)
            then_open(selecting.then(point_opened, inputs=[point, action], outputs=[inspector.image, tabs, picked],
                                     api_visibility="private"), picked, inspector, noise, tabs)
        start.click(handlers.draw, inputs=[id_folder, generation, ood_folder, checkpoint_file, space, colour, cap],
                    outputs=[plot, status, view], api_name="featuremap", concurrency_limit=1,
                    concurrency_id="featuremap", trigger_mode="multiple")
        # Stop sets a flag the draw reads after every batch (no `cancels`: a cancelled generator event leaves Gradio's
        # page unable to start the next draw); queue=False, so Stop is never queued behind anything
        stop.click(handlers.halt, outputs=status, api_name="featuremap_stop", queue=False)
        if gr.context.Context.root_block is not None:  # a page closed or reloaded stops its map: the next gets the CPU
            gr.context.Context.root_block.unload(handlers.closed)
        tab.select(featuremap.warm_up_in_background, api_visibility="private")  # numba compiles while folders are typed in
        colour.input(handlers.recolour, inputs=[view, colour], outputs=plot, api_name="featuremap_colour")
    return handlers
