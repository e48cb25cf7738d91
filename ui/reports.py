"""A run's self-contained HTML report (synood/pipelines/report.py) as a file the app serves for download, and the
link that reopens a run in its tab."""
from __future__ import annotations

from pathlib import Path

from synood.data.storage import write_text
from synood.records.runs import RunStore

from .thumbnails import thumbnail_dir

RUN_TABS = {"evaluate": "evaluation", "finetune": "finetune"}  # run kind -> the tab that shows it ("?run=ID")


def report_file(store: RunStore, run_id: str) -> Path:
    """The report of run `run_id`, written (atomically) into the folder the app serves; the file."""
    from synood.pipelines.report import html

    run = store.get(run_id)
    path = thumbnail_dir() / "reports" / f"synood-{run.kind}-{run.id}.html"
    write_text(path, html(run, store))
    return path


def download(store: RunStore, run_id: str):
    """A download button offering the report of run `run_id` (written now)."""
    import gradio as gr

    path = report_file(store, run_id)
    return gr.DownloadButton(f"Download {path.name}", value=str(path), visible=True)


def link(run_id: str) -> str:
    """A Markdown link that opens this page on `run_id` in its tab."""
    return f"[link to this run](?run={run_id})"
