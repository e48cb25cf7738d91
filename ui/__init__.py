"""The Gradio app: a header that always names the running models, and one tab per feature. The tabs that read
folders and files typed into them (Synthetic pairs, Fine-tuning, Feature map) read only under the data roots."""
from __future__ import annotations

import html
import re
from pathlib import Path

import gradio as gr

from ui.access import DataRoots
from synood.config import Config
from synood.models import Suite
from synood.models.interfaces import ROLE_TITLES, ROLES
from synood.models.suites import ORIGIN_LABELS, component_origin
from synood.records import runs

from . import (context_tab, evaluation_tab, featuremap_tab, finetune_tab, models_tab, neglabel_tab, noise_tab,
               pairs_tab)
from .reports import RUN_TABS

CSS_PATH = Path(__file__).with_name("style.css")


def suite_badge(suite: Suite) -> str:
    """One line naming the suite, marked loudly when its weights are random (in any role); a suite whose roles come
    from different places ('auto' with only some paper models here) also names each role's origin."""
    random = any(spec.random for spec in suite.spec.components.values())
    kind = "RANDOM weights" if random else "pretrained weights"
    css = "badge badge-random" if random else "badge"
    origins = {role: component_origin(suite.spec.components[role]) for role in ROLES}
    mix = ""
    if len(set(origins.values())) > 1:
        mix = "<br>" + " · ".join(
            f'<span class="suite-role" data-role="{role}" data-origin="{origin}">{ROLE_TITLES[role]}: '
            f'{"<b>" + ORIGIN_LABELS[origin] + "</b>" if origin == "tiny" else ORIGIN_LABELS[origin]}</span>'
            for role, origin in origins.items())
    return (f'<div class="suite-line">Model suite: <b>{html.escape(suite.spec.title)}</b> '
            f'<span class="{css}">{kind}</span>{mix}</div>')


def notice_html(notice: str) -> str:
    """A suite notice as HTML: its first line a paragraph, its "- " lines a list, `commands` as code."""
    def marked(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

    first, *items = notice.split("\n")
    listed = "".join(f"<li>{marked(item.removeprefix('- '))}</li>" for item in items)
    return f"<p>{marked(first)}</p>" + (f"<ul>{listed}</ul>" if listed else "")


def build_app(config: Config, suite: Suite | None = None, roots: DataRoots | None = None) -> gr.Blocks:
    """The whole app for one configuration; `suite` defaults to the one the config resolves to, `roots` (the folders
    its path inputs may read under) to the working directory."""
    suite = suite or Suite.from_config(config.models)
    roots = roots or DataRoots.of([Path.cwd()])
    with gr.Blocks(title="SynOOD Explorer") as app:
        with gr.Row(elem_id="header"):
            gr.Markdown("# SynOOD Explorer\nSee, teach and reproduce near-boundary out-of-distribution "
                        "detection (SynOOD, ICCV 2025).")
            gr.HTML(suite_badge(suite), elem_id="suite-badge")
        if suite.notice:
            gr.HTML(f'<div class="notice" role="status">{notice_html(suite.notice)}</div>', elem_id="suite-notice")
        with gr.Tabs() as tabs:
            negative_labels = neglabel_tab.build(suite, config)
            context_tab.build(suite, config)
            noise = noise_tab.build(suite, config)
            pairs_tab.build(suite, config, roots)
            finetune = finetune_tab.build(suite, config, roots)
            evaluation = evaluation_tab.build(suite, config, roots, negative_labels.inspector, tabs, noise)
            featuremap_tab.build(suite, config, roots, negative_labels.inspector, noise, tabs)
            models_tab.build(suite)
        assert negative_labels.boundary is not None and negative_labels.inspector is not None
        negative_labels.boundary.click(noise.prefill, inputs=negative_labels.inspector.image,
                                       outputs=[*noise.target, tabs], api_name="boundary_sample",
                                       show_progress_on=negative_labels.inspector.status)
        boxes = {"finetune": finetune.run_box, "evaluation": evaluation.run_box}
        app.load(opener(runs.store_for(config.paths.home), list(boxes)), outputs=[tabs, *boxes.values()],
                 api_visibility="private", show_progress="hidden")
    return app


def opener(store: runs.RunStore, tab_ids: list[str]):
    """The page-load handler of a "?run=ID" link: the run's tab selected and its run box set (a warning for an
    unknown run or a kind no tab shows)."""
    def opened(request: gr.Request):
        run_id = (request.query_params.get("run") or "").strip() if request else ""
        unchanged = [gr.skip()] * (1 + len(tab_ids))
        if not run_id:
            return unchanged
        try:
            run = store.get(run_id)
        except runs.RunError as exc:
            gr.Warning(f"The link's run cannot be opened: {exc}")
            return unchanged
        tab = RUN_TABS.get(run.kind)
        if tab is None:
            gr.Warning(f"Run {run.id} is a {run.kind} run, which no tab shows; `synood report {run.id}` writes its "
                       "page.")
            return unchanged
        return [gr.Tabs(selected=tab), *(run.id if name == tab else gr.skip() for name in tab_ids)]
    return opened
