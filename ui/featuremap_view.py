"""How the Feature map tab shows a map: its points, the plotly figure, and per-point thumbnails with their URLs.

The coordinates come from synood.pipelines.featuremap (PCA, UMAP); this module only draws them. A point's thumbnail
is named by its image's content hash and cached under thumbnails.thumbnail_dir(), the one folder the app serves.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import quote

import numpy as np

from synood.data.storage import atomic_path, intact_jpeg
from ui.thumbnails import pair_image, thumbnail_dir

if TYPE_CHECKING:
    import plotly.graph_objects as go

GROUPS = ("ID", "synthetic", "OOD")
GROUP_COLOURS = {"ID": "#16a34a", "synthetic": "#f59e0b", "OOD": "#dc2626"}
GROUP_SYMBOLS = {"ID": "circle", "synthetic": "diamond", "OOD": "x"}
HOVER = "%{customdata[0]} · %{customdata[1]}<br>%{customdata[5]} %{customdata[2]:.3f}<extra></extra>"  # the panel has the image
WEBGL_POINTS = 3000  # a map of more points is drawn with WebGL (Scattergl): SVG slows down past a few thousand
EAGER_THUMBNAILS = 5000  # up to this many points every thumbnail is made with the map; beyond, only those shown
SMALL_GROUP_SHARE = 10  # a group with under 1/10 of the points is drawn with bigger, outlined markers
THUMBNAIL_SIZE = 160
_THUMBNAIL_VERSION = "1"  # bump when the thumbnails' look changes


@dataclass(frozen=True)
class Point:
    """What the map says about one point: its group, label, scores (registered scorer name -> value, the map's main
    score first), file name and thumbnail URL."""

    group: str  # one of GROUPS
    label: str
    scores: Mapping[str, float]
    name: str
    thumbnail: str  # a URL relative to the app's root


def thumbnail_path(content: str, size: int = THUMBNAIL_SIZE) -> Path:
    """Where the thumbnail of an image whose bytes hash to `content` is cached (a copy elsewhere shares it, an
    edited file gets a new one): under thumbnails.thumbnail_dir(), the folder the app serves."""
    key = hashlib.sha256(f"{_THUMBNAIL_VERSION}|{size}|{content}".encode()).hexdigest()
    return thumbnail_dir() / "points" / key[:2] / f"{key}.jpg"


def thumbnail(image: Path, path: Path, size: int = THUMBNAIL_SIZE) -> Path:
    """The thumbnail of `image` at `path`, built atomically on a miss (a placeholder for an unreadable image)."""
    if not intact_jpeg(path):  # a miss, or a damaged file: rebuilt
        from PIL import ImageOps

        small = ImageOps.contain(pair_image(image, "image"), (size, size))
        with atomic_path(path) as tmp:
            small.save(tmp, "JPEG", quality=85)
    return path


def thumbnails(images: Sequence[Path], contents: Sequence[str], size: int = THUMBNAIL_SIZE) -> list[Path]:
    """Thumbnails of `images`, given their content hashes (features.FeatureSet.hashes); only the misses are
    built, in parallel (PIL releases the GIL)."""
    paths = [thumbnail_path(content, size) for content in contents]
    missing = [(image, path) for image, path in zip(images, paths) if not path.exists()]
    if missing:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda job: thumbnail(job[0], job[1], size), missing))
    return paths


def file_url(path: Path) -> str:
    """The URL, relative to the app's root, at which Gradio serves a file from its allowed paths."""
    return "gradio_api/file=" + quote(str(path), safe="/")


def figure(xy: np.ndarray, points: Sequence[Point], colour: str = "group", title: str = "",
           titles: Mapping[str, str] | None = None) -> go.Figure:
    """A scatter of `xy` coloured by group (one legend entry each) or by one of the points' scores, named in `titles`
    (name -> title; one shared colour scale, a symbol per group). Each point's customdata is [group, label, score,
    thumbnail URL, file name, score title, its index in `points`] for the hover panel (the colour's score, else the
    map's main one) and the selection gallery.
    Groups are drawn largest first, so a small group lies on top (the legend keeps GROUPS' order), and a group of
    less than a tenth of the points gets bigger, outlined markers. Past WEBGL_POINTS points it draws with WebGL."""
    import plotly.graph_objects as go

    titles = dict(titles or {})
    shown_score = colour if colour in titles else next(iter(titles), "")
    fig = go.Figure()
    members = {group: [i for i, point in enumerate(points) if point.group == group] for group in GROUPS}
    for group in sorted((g for g in GROUPS if members[g]), key=lambda g: -len(members[g])):  # stable: ties in order
        chosen = members[group]
        shown = [points[i] for i in chosen]
        small = len(chosen) * SMALL_GROUP_SHARE < len(points)
        marker: dict[str, Any] = dict(size=11 if small else 7, symbol=GROUP_SYMBOLS[group],
                                      line=dict(width=1.5, color="#111827") if small else dict(width=0))
        values = [point.scores.get(shown_score, float("nan")) for point in shown]
        if colour in titles:
            marker.update(color=values, coloraxis="coloraxis")
        else:
            marker.update(color=GROUP_COLOURS[group], opacity=0.75)
        trace = go.Scattergl if len(points) > WEBGL_POINTS else go.Scatter
        fig.add_trace(trace(x=xy[chosen, 0], y=xy[chosen, 1], mode="markers", name=f"{group} ({len(chosen):,})",
                            legendrank=GROUPS.index(group), marker=marker, hovertemplate=HOVER,
                            customdata=[[p.group, p.label, value, p.thumbnail, p.name,
                                         titles.get(shown_score, "score"), i]
                                        for p, value, i in zip(shown, values, chosen)]))
    fig.update_layout(title=title, height=560, margin=dict(l=10, r=10, t=50, b=10), hovermode="closest",
                      legend=dict(orientation="h", y=-0.02, itemsizing="constant"),
                      xaxis=dict(showticklabels=False, zeroline=False),
                      yaxis=dict(showticklabels=False, zeroline=False))
    if colour in titles:
        fig.update_layout(coloraxis=dict(colorscale="Viridis", colorbar=dict(title=titles[colour])))
    return fig
