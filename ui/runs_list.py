"""The runs table of a tab that shows one kind of run (Fine-tuning, Evaluation): its rows, its newest run and the run
of a row clicked, read from the run database."""
from __future__ import annotations

import time
from typing import Callable

import gradio as gr

from synood.records.runs import Run, RunStore

Columns = Callable[[Run], "list | None"]  # a run's columns after its id, status and creation time


class RunsList:
    """The runs of one `kind` in `store`, one table row each: its id, status and creation time, then `columns(run)`,
    which is None for a run the tab cannot read (left out: the CLI's `synood runs` still lists it)."""

    def __init__(self, store: RunStore, kind: str, columns: Columns):
        self.store, self.kind, self.columns = store, kind, columns

    def rows(self) -> list[list]:
        """One row per run of the kind, newest first."""
        rows = []
        for run in self.store.list(kind=self.kind):
            columns = self.columns(run)
            if columns is not None:
                rows.append([run.id, run.status, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created)),
                             *columns])
        return rows

    def latest(self) -> str:
        """The newest run's id ("" when there is none)."""
        found = self.store.list(kind=self.kind, limit=1)
        return found[0].id if found else ""

    @staticmethod
    def picked(event: gr.SelectData) -> str:
        """The id of the run of the table row clicked."""
        return event.row_value[0]
