"""One self-contained HTML page for a recorded run (evaluate, generate or finetune): tables, plots, thumbnails,
settings and the models used, readable offline in any browser.

Every image is an embedded JPEG thumbnail (a data: URI), plotly.js is inlined once (plotly's own offline bundle),
and no local path appears: folders and files are shown by their last name only (`redact` also scrubs free text).
`html` builds the page (`synood report` writes it); the table helpers are shared with `synood evaluate`'s text table.
"""
from __future__ import annotations

import base64
import html as markup
import io
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from synood import __version__
from synood.data import images
from synood.data.manifest import Pair, PairsError, load_manifest
from synood.errors import UserError
from synood.method.metrics import MetricError, id_threshold
from synood.method.scorers import SCORERS
from synood.models.suites import SUITES
from synood.pipelines.evaluation import EvaluationError, Saved, reopen
from synood.pipelines.hardest import Case, hardest, id_set_of
from synood.records.runs import EvaluateRecord, Run, RunStore

THUMBNAIL = 160  # px, the longer side of an embedded thumbnail
QUALITY = 80  # its JPEG quality
PAIRS = 24  # a generation's pairs shown by default
CASES = 6  # hardest cases per score and side by default
BINS = 40  # histogram bins per score
TPR = 0.95  # the ID share kept by the threshold the histograms mark
NOT_SAVED = ("The per-image scores of this run were not saved (it ran before evaluations were saved in the run "
             "folder, or that folder is gone): only the averages its record holds are shown, without histograms "
             "or hardest cases.")
_PATH = re.compile(r"(?<![\w.:/~-])~?(?:/[^\s/'\"<>,;()\[\]{}]+){2,}/?")


class ReportError(UserError, ValueError):
    """A run that cannot be reported (a kind with nothing to show)."""


def redact(text: str) -> str:
    """`text` with every absolute path (two or more parts, or under ~) cut to "…/" and its last part."""
    return _PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _t(value: Any) -> str:
    """Any value as page text: redacted, then escaped."""
    return markup.escape(redact(str(value)))


def _name(path: str | Path | None) -> str:
    """A file or folder by its last name only (the page names no local path)."""
    return Path(str(path)).name if path else ""


def title_of(scorer: str) -> str:
    """A score's display title from the registry (its key when the registry does not know it)."""
    return SCORERS[scorer].title if scorer in SCORERS else scorer


# The paper-style table, shared with `synood evaluate`'s text table (synood/cli/evaluate.py).
def table_columns(report: Mapping[str, Any]) -> list[str]:
    """The columns of an evaluation report's table (the JSON of `synood evaluate --json`): each OOD set, their
    average, then the average of each group (near, far) when the report has groups."""
    return [*report["ood"], "Average", *(f"Average {group}" for group in report.get("groups", {}))]


def table_rows(report: Mapping[str, Any], convention: str) -> list[tuple[str, list[dict]]]:
    """One row per score under `convention`: its title and its metrics entry for each of `table_columns`."""
    groups = list(report.get("groups", {}))
    return [(title_of(method), [*(s[convention] for s in r["sets"].values()), r["average"][convention],
                                *(r["groups"][group][convention] for group in groups)])
            for method, r in report["methods"].items()]


def half_width(entry: Mapping[str, Any], key: str) -> float | None:
    """Half the width of a metric's 95 % bootstrap interval, None when the entry has none."""
    if "ci95" not in entry:
        return None
    lo, hi = entry["ci95"][key]
    return (hi - lo) / 2


def thumbnail(path: str | Path, size: int = THUMBNAIL, quality: int = QUALITY) -> str | None:
    """An image file as a small JPEG data: URI (through the safe loader), None when it cannot be read."""
    try:
        image = images.load_image(path)
    except images.ImageError:
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _Page:
    """The parts of one page: plotly.js goes in with its first figure only; thumbnails are made once per file."""

    def __init__(self) -> None:
        self.plotly = False
        self.thumbnails: dict[str, str | None] = {}

    def figure(self, figure: Any, name: str) -> str:
        import plotly.io as pio

        found = pio.to_html(figure, full_html=False, include_plotlyjs=not self.plotly,
                            config={"displaylogo": False, "responsive": True})
        self.plotly = True
        return f'<div class="figure" data-figure="{_t(name)}">{found}</div>'

    def image(self, path: str | Path | None, caption: str) -> str:
        """A thumbnail with its caption, or a placeholder naming the file that could not be read."""
        if path is None:
            body = '<div class="missing">no image path saved</div>'
        else:
            key = str(path)
            if key not in self.thumbnails:
                self.thumbnails[key] = thumbnail(path)
            uri = self.thumbnails[key]
            body = (f'<img src="{uri}" alt="{_t(_name(path))}">' if uri else
                    f'<div class="missing">missing: {_t(_name(path))}</div>')
        return f'<figure class="thumb">{body}<figcaption>{caption}</figcaption></figure>'


def _rows(pairs: Iterable[tuple[Any, Any]]) -> str:
    """A two-column key/value table (floats to 6 significant digits)."""
    return ('<table class="kv">' + "".join(f"<tr><th>{_t(k)}</th><td>{_t(format(v, '.6g') if isinstance(v, float) else v)}"
                                           "</td></tr>" for k, v in pairs) + "</table>")


def _json(value: Any) -> str:
    return f"<pre>{_t(json.dumps(value, indent=1, default=str))}</pre>"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _number(value: object, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else str(value)


# The header every report shares.
def _models(run: Run) -> str:
    """The suite (its title and description, from the registry) and the model settings the run recorded."""
    models = run.config.get("models", {})
    suite = run.inputs.get("suite") or models.get("suite")
    found: list[tuple[str, Any]] = []
    if suite:
        spec = SUITES.get(suite)
        found.append(("suite", f"{suite} — {spec.title}" if spec else suite))
        if spec:
            found.append(("about the suite", spec.description))
    found += [(f"component: {role}", name) for role, name in run.inputs.get("components", {}).items()]
    if run.inputs.get("encoder"):
        found.append(("encoder (recorded)", run.inputs["encoder"]))
    found += [(f"models.{k}", v) for k, v in models.items() if v not in (None, "")]
    return "<h2>Models</h2>" + (_rows(found) if found else "<p>The record names no models.</p>")


def _header(run: Run) -> str:
    found = [("run", run.id), ("kind", run.kind), ("status", run.status), ("started", _when(run.created)),
             ("last update", _when(run.updated)), ("duration", f"{run.updated - run.created:,.1f} s")]
    if run.message:
        found.append(("message", run.message))
    return f"<h1>SynOOD Explorer report: {_t(run.kind)} run {_t(run.id)}</h1>" + _rows(found)


def _settings(run: Run) -> str:
    return ('<h2>Settings</h2><details open><summary>Config</summary>' + _json(run.config) + "</details>"
            "<details><summary>Inputs</summary>" + _json(run.inputs) + "</details>"
            "<details><summary>Summary</summary>" + _json(run.summary) + "</details>")


# Evaluate runs.
def _cell(entry: Mapping[str, Any], key: str) -> str:
    half = half_width(entry, key)
    return f"{entry[key]:.2f}" + (f'<span class="ci">±{half:.2f}</span>' if half is not None else "")


def metrics_tables(report: Mapping[str, Any]) -> str:
    """The paper-style tables of an evaluation report, one per convention: AUROC and FPR95 (in %) per OOD set, their
    average and group averages; `v±h` with h half the 95 % bootstrap interval when the report has one."""
    columns = table_columns(report)
    head = "".join(f'<th colspan="2">{_t(c)}</th>' for c in columns)
    sub = "<th>AUROC ↑</th><th>FPR95 ↓</th>" * len(columns)
    sets = ", ".join(f"{_t(n)} ({s['count']})" for n, s in report["ood"].items())
    parts = [f"<p>ID: {_t(_name(report['id']['folder']))} ({report['id']['count']} images); OOD: {sets}</p>"]
    for convention, description in report["conventions"].items():
        body = "".join(f"<tr><th>{_t(title)}</th>"
                       + "".join(f"<td>{_cell(c, 'auroc')}</td><td>{_cell(c, 'fpr95')}</td>" for c in cells) + "</tr>"
                       for title, cells in table_rows(report, convention))
        parts.append(f'<h3>Convention {_t(convention)}</h3><p class="note">{_t(description)}</p>'
                     f'<table class="metrics" data-convention="{_t(convention)}"><thead><tr><th rowspan="2">Score</th>'
                     f"{head}</tr><tr>{sub}</tr></thead><tbody>{body}</tbody></table>")
    notes = ["All values in %."]
    if "bootstrap" in report:
        notes.append("v±h: the point estimate and half the width of its 95 % percentile bootstrap interval "
                     f"({report['bootstrap']['resamples']} resamples, seed {report['bootstrap']['seed']}).")
    return "".join(parts) + f'<p class="note">{" ".join(notes)}</p>'


def _averages(record: EvaluateRecord) -> str:
    """The averaged metrics an evaluate run's record holds (all it has when its per-image scores were not saved)."""
    rows = "".join(f"<tr><th>{_t(title_of(method))}</th><td>{_t(c)}</td>"
                   + "".join(f"<td>{_number(m.get(k, float('nan')))}</td>"
                             for k in ("auroc", "fpr95", "aupr_in", "aupr_out")) + "</tr>"
                   for method, by in record.averages.items() for c, m in by.items())
    counts = ", ".join(f"{_t(name)} ({n})" for name, n in record.counts.items())
    sets = ", ".join(f"{_t(name)}: {_t(_name(folder))}" for name, folder in record.sets.items())
    return (f"<p>Sets: {sets}" + (f"; images scored: {counts}" if counts else "") + "</p>"
            '<table class="metrics averages"><thead><tr><th>Score</th><th>Convention</th><th>AUROC ↑</th>'
            f"<th>FPR95 ↓</th><th>AUPR-In</th><th>AUPR-Out</th></tr></thead><tbody>{rows}</tbody></table>"
            '<p class="note">Averages over the OOD sets, in %.</p>')


def _saved(run: Run) -> Saved | None:
    """The evaluation saved in an evaluate run's folder, None when there is none or it cannot be read."""
    folder = run.artifacts.get("evaluation")
    if not folder:
        return None
    try:
        return reopen(folder)
    except EvaluationError:
        return None


def _threshold_convention(report: Mapping[str, Any]) -> str:
    """The convention whose ID threshold the histograms mark: the report's first that has one (mos otherwise)."""
    return next((c for c in report["conventions"] if c != "openood"), "mos")


def histogram(saved: Saved, scorer: str) -> Any:
    """A plotly figure of one score's distribution per set (shared bins, each set's share of its images) with the
    threshold keeping 95 % of the ID images marked."""
    import plotly.graph_objects as go

    id_set = id_set_of(saved)
    values = {name: s.scores[scorer].detach().double().cpu().numpy() for name, s in saved.sets.items()}
    low, high = min(v.min() for v in values.values()), max(v.max() for v in values.values())
    edges = np.linspace(low, high if high > low else low + 1.0, BINS + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    figure = go.Figure()
    for name, v in values.items():
        counts, _ = np.histogram(v, edges)
        figure.add_trace(go.Bar(x=centres, y=counts / len(v), width=width, opacity=0.55,
                                name=f"{name} ({len(v)}){' — ID' if name == id_set else ''}"))
    convention = _threshold_convention(saved.report)
    try:
        threshold = id_threshold(values[id_set], TPR, convention)
        figure.add_vline(x=threshold, line_dash="dash", line_color="black",
                         annotation_text=f"{TPR:.0%} ID threshold ({convention}): {threshold:.4g}")
    except MetricError:
        pass  # no finite ID scores to place it by: the bars still show
    figure.update_layout(barmode="overlay", template="plotly_white", height=320, margin=dict(l=50, r=20, t=50, b=40),
                         title=f"{title_of(scorer)}: scores per set", xaxis_title="score (higher = more ID)",
                         yaxis_title="share of the set's images", legend=dict(orientation="h", y=-0.25))
    return figure


def _cases(page: _Page, cases: Sequence[Case]) -> str:
    if not cases:
        return '<p class="note">none</p>'
    return '<div class="gallery">' + "".join(
        page.image(c.path, f"{_t(c.set)} · score {c.score:.4g}" + (f"<br>{_t(_name(c.path))}" if c.path else ""))
        for c in cases) + "</div>"


def _evaluation(page: _Page, saved: Saved, cases: int) -> str:
    """The saved evaluation: its tables, a histogram per score and each score's hardest cases."""
    parts = ["<h2>Metrics</h2>", metrics_tables(saved.report), "<h2>Score histograms</h2>"]
    scorers = list(saved.report["methods"])
    parts += [page.figure(histogram(saved, scorer), f"histogram-{scorer}") for scorer in scorers]
    parts.append(f"<h2>Hardest cases</h2><p class=\"note\">Per score: the {cases} OOD images it scored most "
                 f"in-distribution and the {cases} ID images it scored least (higher = more ID).</p>")
    for scorer in scorers:
        found = hardest(saved, scorer, cases)
        parts.append(f'<section class="hardest" data-scorer="{_t(scorer)}"><h3>{_t(title_of(scorer))}</h3>'
                     f"<h4>OOD images scored most ID</h4>{_cases(page, found.ood)}"
                     f"<h4>ID images scored least ID</h4>{_cases(page, found.id)}</section>")
    return "".join(parts)


def _evaluate(page: _Page, run: Run, store: RunStore, pairs: int, cases: int) -> str:
    saved = _saved(run)
    if saved is not None:
        return _evaluation(page, saved, cases)
    record = EvaluateRecord.of(run)
    if not record.averages:
        return f'<h2>Metrics</h2><p class="note">This run is {_t(run.status)} and recorded no metrics.</p>'
    return f'<h2>Metrics</h2><p class="note not-saved">{_t(NOT_SAVED)}</p>' + _averages(record)


# Generate runs.
def _pair_caption(pair: Pair) -> str:
    context = ", ".join(pair.context) or "none"
    return (f"<b>{_t(pair.class_name)}</b> → {_t(pair.negative_label)}<br>context: {_t(context)}<br>"
            f"energy {pair.energy_before:.3f} → {pair.energy_after:.3f} (Δ {pair.energy_change:+.3f})")


def _generate(page: _Page, run: Run, store: RunStore, pairs: int, cases: int) -> str:
    settings = [(k, v) for k, v in run.config.get("synthesis", {}).items()]
    counts = [("items selected", run.inputs.get("items")), ("processes", run.inputs.get("processes")),
              *((k, v) for k, v in run.summary.items())]
    parts = ["<h2>Generation settings</h2>", _rows(settings) if settings else "<p>none recorded</p>",
             "<h2>Counts</h2>", _rows((k, v) for k, v in counts if v is not None)]
    where = run.artifacts.get("manifest") or run.inputs.get("out")
    try:
        manifest = load_manifest(where) if where else None
    except PairsError as exc:
        return "".join(parts) + f'<p class="note">The generation\'s manifest cannot be read: {_t(exc)}</p>'
    if manifest is None:
        return "".join(parts) + '<p class="note">The record names no output folder.</p>'
    changes = [p.energy_change for p in manifest.pairs]
    parts.append(_rows([("pairs in the manifest", len(manifest.pairs)), ("lines skipped", manifest.skipped),
                        ("classes", len(manifest.classes())),
                        ("mean energy change (synthetic − source)", f"{np.mean(changes):+.4f}")]))
    shown = manifest.pairs[:pairs]
    parts.append(f"<h2>Pairs</h2><p class=\"note\">The first {len(shown)} of {len(manifest.pairs)}: source | "
                 "synthetic image, the class → the negative label, the context labels and the energy change.</p>")
    parts.append('<div class="pairs">' + "".join(
        f'<div class="pair">{page.image(p.source, "source")}{page.image(p.image, "synthetic")}'
        f'<p>{_pair_caption(p)}</p></div>' for p in shown) + "</div>")
    return "".join(parts)


# Finetune runs.
def losses(epochs: Sequence[Mapping[str, Any]]) -> Any:
    """A plotly line plot of the recorded epochs' losses, one line per stage."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for stage in dict.fromkeys(e["stage"] for e in epochs):
        found = [e for e in epochs if e["stage"] == stage]
        figure.add_trace(go.Scatter(x=[e["epoch"] for e in found], y=[e.get("loss") for e in found],
                                    mode="lines+markers", name=stage))
    figure.update_layout(template="plotly_white", height=320, margin=dict(l=50, r=20, t=50, b=40),
                         title="Loss per epoch and stage", xaxis_title="epoch", yaxis_title="loss")
    return figure


def _size(path: str | None) -> str:
    if not path:
        return "not written"
    try:
        size = Path(path).stat().st_size
    except OSError:
        return f"{_name(path)}: missing"
    return f"{_name(path)}: {size:,} bytes ({size / 2**20:.2f} MB)"


def _finetune(page: _Page, run: Run, store: RunStore, pairs: int, cases: int) -> str:
    epochs = store.epochs(run.id)
    parts = ["<h2>Training</h2>", _rows([("epochs recorded", len(epochs)),
                                         ("detector file", _size(run.artifacts.get("detector"))),
                                         *((k, v) for k, v in run.summary.items())])]
    if epochs:
        parts.append(page.figure(losses(epochs), "losses"))
        parts.append('<details><summary>Epochs</summary><table class="epochs"><tr><th>stage</th><th>epoch</th>'
                     "<th>loss</th><th>accuracy</th><th>lr</th></tr>" + "".join(
                         f"<tr><td>{_t(e['stage'])}</td><td>{e['epoch']}</td><td>{_number(e.get('loss'), 4)}</td>"
                         f"<td>{_number(e.get('accuracy'), 3)}</td><td>{_t(e.get('lr', ''))}</td></tr>"
                         for e in epochs) + "</table></details>")
    else:
        parts.append('<p class="note">No epoch was recorded.</p>')
    detector = run.artifacts.get("detector")
    evaluations = [r for r in reversed(store.list("evaluate", limit=1_000_000))  # oldest first
                   if r.inputs.get("finetune_run") == run.id or (detector and r.inputs.get("checkpoint") == detector)]
    parts.append("<h2>Before / after evaluations</h2>")
    if not evaluations:
        parts.append('<p class="note">No evaluate run is recorded for this run\'s detector.</p>')
    for found in evaluations:
        saved = _saved(found)
        parts.append(f'<section class="evaluation"><h3>Evaluate run {_t(found.id)} ({_t(found.status)}, '
                     f"{_when(found.created)})</h3>")
        parts.append(metrics_tables(saved.report) if saved else
                     f'<p class="note not-saved">{_t(NOT_SAVED)}</p>' + _averages(EvaluateRecord.of(found)))
        parts.append("</section>")
    return "".join(parts)


SECTIONS: dict[str, Callable[[_Page, Run, RunStore, int, int], str]] = {
    "evaluate": _evaluate, "generate": _generate, "finetune": _finetune}

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;
color:#1f2328}
h1{font-size:1.5em}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;
vertical-align:top}table.metrics td{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{background:#f6f8fa;font-weight:600}.ci{color:#57606a;font-size:.85em}.note{color:#57606a}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:400px}
.gallery,.pairs{display:flex;flex-wrap:wrap;gap:10px}.thumb{margin:0;width:170px;font-size:.8em}
.thumb img{max-width:160px;max-height:160px;display:block}
.missing{width:160px;height:120px;background:#eee;border:1px dashed #999;display:flex;align-items:center;
justify-content:center;text-align:center;font-size:.85em;word-break:break-all}
.pair{display:flex;flex-wrap:wrap;gap:6px;border:1px solid #d0d7de;padding:6px;width:360px}
.pair p{margin:4px 0;font-size:.85em;width:100%}
"""


def html(run: Run, store: RunStore, pairs: int = PAIRS, cases: int = CASES) -> str:
    """The report of `run` (from `store`) as one self-contained HTML page; `pairs` caps a generation's gallery and
    `cases` the hardest cases per score. ReportError for a kind this report does not know."""
    if run.kind not in SECTIONS:
        raise ReportError(f"run {run.id} is a {run.kind!r} run: reports exist for {', '.join(SECTIONS)} runs")
    page = _Page()
    body = SECTIONS[run.kind](page, run, store, pairs, cases)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>SynOOD report: {_t(run.kind)} run {_t(run.id)}</title><style>{STYLE}</style></head><body>"
            + _header(run) + _models(run) + body + _settings(run)
            + f'<p class="note">Written by synood {__version__} on {_when(time.time())}; this page is '
            f"self-contained (images embedded{', plotly.js inlined' if page.plotly else ''}) and needs no network."
            "</p></body></html>\n")
