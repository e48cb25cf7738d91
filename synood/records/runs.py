"""The run database: every generation, fine-tuning and evaluation run in one embedded SQLite file.

A run row holds its kind, status, config, inputs, summary metrics and artifact paths; fine-tuning
adds one row per epoch. The file lives in the SynOOD home, so runs outlive the app and the shell
that started them. A run whose process died while "running" reads as "interrupted".
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from synood.config import Config, apply_mapping
from synood.errors import UserError

KINDS = ("generate", "finetune", "evaluate")
ACTIVE = ("queued", "running")
FINISHED = ("completed", "failed", "stopped", "interrupted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    host TEXT NOT NULL, pid INTEGER NOT NULL, config TEXT NOT NULL, inputs TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}', artifacts TEXT NOT NULL DEFAULT '{}', message TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(id), stage TEXT NOT NULL, epoch INTEGER NOT NULL, metrics TEXT NOT NULL,
    recorded REAL NOT NULL, PRIMARY KEY (run_id, stage, epoch));
"""


class RunError(UserError, ValueError):
    """A run that does not exist or cannot do what was asked."""


@dataclass
class Run:
    """One row of the runs table, its JSON columns decoded."""

    id: str
    kind: str
    status: str
    created: float
    updated: float
    host: str
    pid: int
    config: dict
    inputs: dict
    summary: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _alive(host: str, pid: int) -> bool:
    """Whether the process that owns a run still exists (only knowable on its own host)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """The run database at `path`; every call opens its own connection, so threads and processes may share it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as db:
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:  # damaged: the records are the user's, so never replaced here
            raise RunError(f"{self.path}: not a readable run database ({exc}); move it aside and a new one "
                           "starts") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            with db:  # one transaction: committed on success, rolled back on error
                yield db

    def create(self, kind: str, config: dict, inputs: dict, status: str = "running") -> Run:
        """A new run owned by this process."""
        if kind not in KINDS:
            raise RunError(f"unknown run kind {kind!r}; kinds are {', '.join(KINDS)}")
        now = time.time()
        run_id = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + uuid.uuid4().hex[:6]
        run = Run(run_id, kind, status, now, now, socket.gethostname(), os.getpid(), config, inputs)
        with self._connect() as db:
            db.execute("INSERT INTO runs (id, kind, status, created, updated, host, pid, config, inputs) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (run.id, kind, status, now, now, run.host, run.pid, json.dumps(config), json.dumps(inputs)))
        return run

    def update(self, run_id: str, *, status: str | None = None, summary: dict | None = None,
               artifacts: dict | None = None, message: str | None = None, claim: bool = False) -> None:
        """Change a run's columns; `summary` and `artifacts` are merged into what is there.
        `claim` makes this process its owner (a resumed run)."""
        run = self.get(run_id)
        values: dict[str, Any] = {"updated": time.time()}
        if status is not None:
            values["status"] = status
        if summary is not None:
            values["summary"] = json.dumps({**run.summary, **summary})
        if artifacts is not None:
            values["artifacts"] = json.dumps({**run.artifacts, **artifacts})
        if message is not None:
            values["message"] = message
        if claim:
            values.update(host=socket.gethostname(), pid=os.getpid())
        with self._connect() as db:
            db.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                       (*values.values(), run_id))

    @contextmanager
    def recording(self, run_id: str) -> Iterator[None]:
        """Mark the run "failed" (an error) or "interrupted" (Ctrl-C, exit) with the reason if the body raises."""
        try:
            yield
        except BaseException as exc:
            self.update(run_id, status="failed" if isinstance(exc, Exception) else "interrupted",
                        message=f"{type(exc).__name__}: {exc}")
            raise

    def log_epoch(self, run_id: str, stage: str, epoch: int, metrics: dict) -> None:
        """Record one epoch; recording the same (stage, epoch) again replaces it (a resumed run)."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO epochs (run_id, stage, epoch, metrics, recorded) VALUES (?, ?, ?, ?, ?)",
                       (run_id, stage, epoch, json.dumps(metrics), time.time()))
            db.execute("UPDATE runs SET updated = ? WHERE id = ?", (time.time(), run_id))

    def epochs(self, run_id: str) -> list[dict]:
        """Every recorded epoch of a run in training order, each a dict with its stage and epoch."""
        with self._connect() as db:
            rows = db.execute("SELECT stage, epoch, metrics FROM epochs WHERE run_id = ? ORDER BY recorded, rowid",
                              (run_id,)).fetchall()
        return [{**json.loads(metrics), "stage": stage, "epoch": epoch} for stage, epoch, metrics in rows]

    def get(self, run_id: str) -> Run:
        """One run, with "running" read as "interrupted" when its process is gone."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"no run {run_id!r} in {self.path}")
        return self._run(row)

    def list(self, kind: str | None = None, limit: int = 200) -> list[Run]:
        """The most recent runs first, optionally of one kind."""
        query, args = "SELECT * FROM runs", tuple[str, ...]()
        if kind:
            query, args = query + " WHERE kind = ?", (kind,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created DESC LIMIT ?", (*args, limit)).fetchall()
        return [self._run(row) for row in rows]

    @staticmethod
    def _run(row: tuple) -> Run:
        run_id, kind, status, created, updated, host, pid, config, inputs, summary, artifacts, message = row
        if status in ACTIVE and not _alive(host, pid):
            status = "interrupted"
        return Run(run_id, kind, status, created, updated, host, pid, json.loads(config), json.loads(inputs),
                   json.loads(summary), json.loads(artifacts), message)


EVALUATE_SCHEMA = "evaluate/2"  # the one shape of evaluate rows; rows without it were written before it existed


@dataclass
class EvaluateRecord:
    """An evaluate run's record: the image sets, scores and conventions asked for, and each score's metrics
    (in %) averaged over the OOD sets. `of` reads rows of every version; `inputs`/`summary` write its columns."""

    sets: dict[str, str]  # set name -> folder, the ID set among them
    id_set: str
    methods: list[str]
    conventions: list[str]
    context: dict = field(default_factory=dict)  # suite, detector file, fine-tuning run...
    averages: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # method -> convention -> %
    counts: dict[str, int] = field(default_factory=dict)  # images scored per set
    skipped: int = 0  # unreadable image files, all sets together

    def inputs(self) -> dict:
        """The inputs column: what was asked for, known when the run starts."""
        return {"schema": EVALUATE_SCHEMA, "sets": self.sets, "id_set": self.id_set, "methods": self.methods,
                "conventions": self.conventions, **self.context}

    def summary(self) -> dict:
        """The summary column: the averaged metrics, written when the run completes."""
        return {"methods": self.averages, "counts": self.counts, "skipped": self.skipped}

    @classmethod
    def of(cls, run: Run) -> EvaluateRecord:
        """The record of an evaluate run, whichever version wrote it (RunError for another kind)."""
        if run.kind != "evaluate":
            raise RunError(f"run {run.id} is a {run.kind} run, not an evaluate run")
        inputs, summary = dict(run.inputs), dict(run.summary)
        if inputs.pop("schema", None) == EVALUATE_SCHEMA:
            fields = ("sets", "id_set", "methods", "conventions")
            sets, id_set, methods, conventions = (inputs.pop(k) for k in fields)
            return cls(sets, id_set, methods, conventions, inputs, summary.get("methods", {}),
                       summary.get("counts", {}), summary.get("skipped", 0))
        if "id_folder" in inputs:  # the Fine-tuning tab's before/after: one ID and one OOD folder
            averages = summary.get("methods", {})
            counts = {"ID": summary["id"], "OOD": summary["ood"]} if "id" in summary else {}
            context = {k: v for k, v in inputs.items() if k not in ("id_folder", "ood_folder")}
            return cls({"ID": inputs["id_folder"], "OOD": inputs["ood_folder"]}, "ID", list(averages),
                       list(dict.fromkeys(c for by in averages.values() for c in by)), context, averages, counts,
                       summary.get("skipped", 0))
        sets = {"ID": inputs.get("id", ""), **inputs.get("ood", {})}  # `synood evaluate`: summary = averages
        context = {k: v for k, v in inputs.items() if k not in ("id", "ood", "methods", "conventions")}
        return cls(sets, "ID", inputs.get("methods", list(summary)), inputs.get("conventions", []), context,
                   summary)


BEFORE_KEYS = {  # what runs recorded before a key existed did: a resumed old run continues as it started
    ("projection", "input"): "unit", ("projection", "schedule"): "batch", ("projection", "eta_min"): 0.0,
    ("negtune", "parameter"): "unit", ("negtune", "schedule"): "batch",
}


def config_of(run: Run, home: str) -> Config:
    """The config a run was started with (its stored sections), with `home` as its home folder. Keys its record
    lacks take the behaviour of the version that wrote it (BEFORE_KEYS), not today's defaults."""
    stored = {section: dict(values) for section, values in run.config.items()}
    for (section, key), value in BEFORE_KEYS.items():
        if section in stored:
            stored[section].setdefault(key, value)
    config = apply_mapping(Config(), stored)
    config.paths.home = home
    return config


def runs_folder(home: str | Path) -> Path:
    """The folder under `home` (config.paths.home) that holds every run's files."""
    return Path(home).expanduser() / "runs"


def run_folder(home: str | Path, run_id: str) -> Path:
    """Where a run's files live under `home` (config.paths.home): a fine-tuning run's states and detector file, an
    evaluation's report and per-image scores."""
    return runs_folder(home) / run_id


def store_for(home: str | Path) -> RunStore:
    """The run database of a SynOOD home folder (config.paths.home)."""
    return RunStore(Path(home).expanduser() / "runs.sqlite")
