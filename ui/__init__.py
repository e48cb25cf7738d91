"""The Gradio app: a header that always names the running models, and one tab per feature. The tabs that read
folders and files typed into them (Synthetic pairs, Fine-tuning, Feature map) read only under the data roots."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ui.access import DataRoots
from synood.config import Config
from synood.models import Suite

from . import context_tab, featuremap_tab, finetune_tab, models_tab, neglabel_tab, noise_tab, pairs_tab

CSS_PATH = Path(__file__).with_name("style.css")


def suite_badge(suite: Suite) -> str:
    """One line naming the suite, marked loudly when its weights are random."""
    random = any(spec.random for spec in suite.spec.components.values())
    kind = "RANDOM weights" if random else "pretrained weights"
    css = "badge badge-random" if random else "badge"
    return (f'<div class="suite-line">Model suite: <b>{suite.spec.title}</b> '
            f'<span class="{css}">{kind}</span></div>')


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
            gr.HTML(f'<div class="notice" role="status">{suite.notice}</div>', elem_id="suite-notice")
        with gr.Tabs():
            neglabel_tab.build(suite, config)
            context_tab.build(suite, config)
            noise_tab.build(suite, config)
            pairs_tab.build(suite, config, roots)
            finetune_tab.build(suite, config, roots)
            featuremap_tab.build(suite, config, roots)
            models_tab.build(suite)
    return app
