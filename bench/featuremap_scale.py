"""The Feature map at 5,000 and 50,000 points: time to the first (PCA) view and to UMAP, and drawing in a browser.

For each size, on clustered 512-D unit features (bench/featuremap.clustered), in one process after a warm-up fit:
- PCA (the preview shown at once) and the figure it is drawn with;
- UMAP the app's way (featuremap.umap_2d: scikit-learn's exact kNN graph) beside the plain way,
  `umap.UMAP().fit_transform(x)` (pynndescent's approximate graph), with each map's 10-NN cluster purity;
- the figure drawn in headless Chromium (Plotly.newPlot until the plot is on screen, then a zoom) with WebGL
  (Scattergl, what the app draws past featuremap_view.WEBGL_POINTS points) beside SVG (Scatter, the plain way);
  headless Chromium renders WebGL in software (SwiftShader), so a GPU browser draws it faster still.
Run: .venv/bin/python bench/featuremap_scale.py [--sizes 5000,50000] [--draw-only]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.featuremap import clustered, purity  # noqa: E402
from synood.pipelines import featuremap  # noqa: E402
from ui import featuremap_view  # noqa: E402
from ui.featuremap_view import Point  # noqa: E402


def points_of(labels: np.ndarray) -> list[Point]:
    """One map point per feature: two thirds ID, the rest OOD, with a score, as the app makes them."""
    return [Point("ID" if i % 3 else "OOD", f"cluster {label}", {"neglabel": float(i % 100) / 100}, f"{i}.jpg",
                  f"gradio_api/file=/thumbnails/{i}.jpg") for i, label in enumerate(labels.tolist())]


def drawn(figure, webgl: bool) -> tuple[float, float]:
    """Seconds Chromium takes to draw `figure` (Plotly.newPlot to the next frame), then to redraw it zoomed in
    (Plotly.relayout to half its ranges: what every pan, zoom and box drawn on the map costs), as WebGL or SVG."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from playwright.sync_api import sync_playwright
    from plotly.offline import get_plotlyjs

    from bench.common.browser import CHROMIUM, CHROMIUM_ARGS

    kind = go.Scattergl if webgl else go.Scatter
    figure = go.Figure([kind(**{k: v for k, v in trace.to_plotly_json().items() if k != "type"})
                        for trace in figure.data], layout=figure.layout)
    with tempfile.TemporaryDirectory() as folder:
        page_file = Path(folder) / "map.html"
        page_file.write_text(f"<html><head><script>{get_plotlyjs()}</script></head><body><div id='map'></div>"
                             f"<script>window.figure = {pio.to_json(figure)};</script></body></html>")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--use-gl=swiftshader",
                                                                       "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(page_file.as_uri())
            seconds = page.evaluate("""async () => {
                const start = performance.now();
                await Plotly.newPlot('map', window.figure.data, window.figure.layout);
                await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                const seconds = (performance.now() - start) / 1000;
                const drawn = document.querySelectorAll('#map .point').length
                    + document.querySelectorAll('#map canvas.gl-canvas-context').length;
                if (!drawn) throw new Error('nothing was drawn');
                const layout = document.getElementById('map')._fullLayout;
                const half = (range) => [range[0] / 2, range[1] / 2];
                const zoom = performance.now();
                await Plotly.relayout('map', {'xaxis.range': half(layout.xaxis.range),
                                              'yaxis.range': half(layout.yaxis.range)});
                await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                return [seconds, (performance.now() - zoom) / 1000]; }""")
            browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--draw-only", action="store_true", help="only the browser's drawing (no UMAP)")
    args = parser.parse_args()
    import umap

    if not args.draw_only:
        featuremap.warm_up()
        umap.UMAP().fit_transform(clustered(9, 200)[0])  # both ways compiled before any timing
    print(f"{'points':>7}  {'PCA s':>6}  {'figure s':>8}  {'UMAP ours s':>11}  {'UMAP plain s':>12}  "
          f"{'purity ours/plain/512-D':>24}  {'WebGL draw/zoom s':>17}  {'SVG draw/zoom s':>15}")
    for size in (int(n) for n in args.sizes.split(",")):
        x, labels = clustered(0, size)
        start = time.perf_counter()
        xy = featuremap.pca_2d(x)
        pca = time.perf_counter() - start
        start = time.perf_counter()
        figure = featuremap_view.figure(xy, points_of(labels), "group", "PCA", {"neglabel": "NegLabel"})
        built = time.perf_counter() - start
        ours_s = plain_s = float("nan")
        quality = "-"
        if not args.draw_only:
            start = time.perf_counter()
            ours = featuremap.umap_2d(x)
            ours_s = time.perf_counter() - start
            start = time.perf_counter()
            plain = umap.UMAP().fit_transform(x)
            plain_s = time.perf_counter() - start
            quality = f"{purity(ours, labels):.2f}/{purity(plain, labels):.2f}/{purity(x, labels):.2f}"
        webgl, svg = drawn(figure, True), drawn(figure, False)
        print(f"{size:>7,}  {pca:>6.2f}  {built:>8.2f}  {ours_s:>11.1f}  {plain_s:>12.1f}  {quality:>24}  "
              f"{webgl[0]:>8.2f}/{webgl[1]:<8.2f}  {svg[0]:>7.2f}/{svg[1]:<7.2f}", flush=True)


if __name__ == "__main__":
    main()
