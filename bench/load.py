"""Load: many gradio_client users score the packaged photos on the Negative labels tab at once while
one long fine-tuning run trains in the same app; loopback only, a fixed count and an overall deadline.

One app (`python app.py --suite offline` on 127.0.0.1, a free port) serves all of it, in this order:
1. alone: one client scores every packaged photo once, one at a time, after a warm-up request that
   loads the models. These answers are what each answer under load must equal, and their latency
   is the single-user reference;
2. a fine-tuning run (batch 1, many epochs) launched through /finetune_launch trains in the
   background; its recorded epochs are read through /finetune_show;
3. load: U users (threads, each with its own Client) each send R requests back to back, taking the
   photos in turn. Beside them an order probe sends N requests from one client, each once the server
   has queued the one before, and notes the order they finish in;
4. the run is stopped through /finetune_stop (it stays in the app's run database, stopped).
The app's resident memory (VmRSS of its process and of any child) is read every 0.5 s throughout.

Served in order, seen from the client: the app queues events first come, first served, with 4
workers (app.py). A request can finish behind a later one only if the later one started after it
and ran entirely while it was still running on another worker; with requests of one kind that is a
few at most. So no probe request may finish more than `CONCURRENCY` places behind its submission
place. A last-in-first-out or unordered queue with a backlog (the probe notes how many requests
waited ahead of each of its own) would put the first probe requests many places back.
Run: .venv/bin/python bench/load.py [--users 24] [--requests 10] [--deadline 900] [--generation DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from gradio_client.client import Job
from gradio_client.utils import Status

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common.finetune_tab import settings, wait_for  # noqa: E402
from bench.common.serve import serving  # noqa: E402
from synood.data import photos  # noqa: E402

SCORE = "/neglabel_score"
CONCURRENCY = 4  # app.py: queue(default_concurrency_limit=4)
LONG_JOB_EPOCHS = 100_000  # per stage, at batch 1: far longer than any load; stopped at the end
SHOWN = re.compile(r"\*\*Run (\S+)\*\* · \*\*(\w+)\*\* · (\d+) of \d+ epochs")
MIB = 1024  # KiB


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, in KiB (VmRSS from /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended between two reads
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


class MemorySampler:
    """Reads `rss_kib(pid)` every `every` seconds on a thread, from start() to stop()."""

    def __init__(self, pid: int, every: float = 0.5):
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int]] = []  # (monotonic time, KiB)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def now(self) -> int:
        """A reading taken now (also recorded)."""
        kib = rss_kib(self.pid)
        self.samples.append((time.monotonic(), kib))
        return kib

    def between(self, start: float, end: float) -> list[int]:
        return [kib for t, kib in self.samples if start <= t <= end]

    def _loop(self) -> None:
        while not self._done.is_set():
            self.now()
            self._done.wait(self.every)


@dataclass
class Deadline:
    """When the load ends (monotonic seconds); set once every user is connected."""

    at: float = float("inf")

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def left(self) -> float:
        return max(self.at - time.monotonic(), 0.1)


@dataclass
class Request:
    """One scoring request as its client saw it."""

    user: int  # -1: the single user alone
    photo: str
    start: float
    end: float = 0.0
    card: str | None = None  # the answer's score card
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Probe:
    """The order probe: one client's requests to one photo, each sent once the one before was queued."""

    photo: str
    ranks: list[int | None] = field(default_factory=list)  # requests waiting ahead of each when it was queued
    finished: list[int] = field(default_factory=list)  # submission numbers, in the order the answers came
    cards: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def problem(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def score_in(card: str) -> float:
    """S(x) read back from a score card."""
    found = re.search(r"S\(x\) = ([0-9.]+)", card)
    if not found:
        raise ValueError(f"no S(x) in the answer: {card[:200]!r}")
    return float(found.group(1))


def submit_score(client: Client, photo: photos.Photo) -> Job:
    return client.submit(handle_file(str(photo.path)), api_name=SCORE)


def card_of(job: Job, timeout: float) -> str:
    """The score card (HTML: S(x), MSP and energy, as the tab prints them) of a /neglabel_score answer."""
    return job.result(timeout=timeout)[0]


def score_once(client: Client, photo: photos.Photo, user: int, timeout: float) -> Request:
    """Score `photo`, waiting at most `timeout` s for the answer; an error or a timeout is recorded."""
    request = Request(user, photo.name, time.monotonic())
    try:
        request.card = card_of(submit_score(client, photo), timeout)
    except Exception as exc:  # noqa: BLE001 (every failure is counted and reported; none stops the run)
        request.error = problem(exc)
    request.end = time.monotonic()
    return request


def alone(client: Client, chosen: list[photos.Photo], timeout: float) -> dict[str, Request]:
    """One request at a time: each photo's reference answer and its single-user latency."""
    found = {"warm-up": score_once(client, chosen[0], -1, timeout)}  # loads the models, mines (or reads the cache)
    for photo in chosen:
        found[photo.name] = score_once(client, photo, -1, timeout)
    failed = [f"{name}: {r.error}" for name, r in found.items() if r.error]
    if failed:
        raise RuntimeError(f"a single-user request failed, {failed[0]}")
    del found["warm-up"]
    return found


def user(client: Client, index: int, count: int, chosen: list[photos.Photo], go: threading.Barrier,
         deadline: Deadline, out: list[Request]) -> None:
    """One user: `count` requests back to back over the photos, none sent after the deadline."""
    go.wait()
    for r in range(count):
        if deadline.passed():
            return
        out.append(score_once(client, chosen[(index * count + r) % len(chosen)], index, deadline.left()))


def queued_rank(job: Job, deadline: Deadline) -> int | None:
    """Wait until the server has queued `job`: how many requests were waiting ahead of it then (0 when it
    started at once; None when the deadline came first)."""
    while not deadline.passed() and not job.done():
        status = job.status()
        if status.code == Status.IN_QUEUE:
            return status.rank or 0
        if Status.IN_QUEUE < status.code:
            return 0
        time.sleep(0.005)
    return 0 if job.done() else None


def order_probe(client: Client, probe: Probe, photo: photos.Photo, count: int, go: threading.Barrier,
                deadline: Deadline) -> None:
    """Send `count` requests, each once the one before is queued; note the order the answers come in."""
    jobs = []
    go.wait()
    for i in range(count):
        job = submit_score(client, photo)
        job.add_done_callback(lambda _, i=i: probe.finished.append(i))  # on the client's threads; append is atomic
        jobs.append(job)
        probe.ranks.append(queued_rank(job, deadline))
    for job in jobs:
        try:
            probe.cards.append(card_of(job, deadline.left()))
        except Exception as exc:  # noqa: BLE001
            probe.cards.append(None)
            probe.errors.append(problem(exc))


def largest_lag(finished: list[int]) -> int:
    """The most places any request finished behind its submission place (requests numbered 0.. in
    submission order, `finished` in completion order): 0 when they finished in order."""
    return max((place - index for place, index in enumerate(finished)), default=0)


def shown(client: Client, run_id: str) -> tuple[str, int]:
    """A run's status and how many epochs it has recorded, read through /finetune_show."""
    text, _ = client.predict(run_id, api_name="/finetune_show")
    found = SHOWN.search(text)
    if not found or found.group(1) != run_id:
        raise RuntimeError(f"/finetune_show answered something else for run {run_id}: {text[:200]!r}")
    return found.group(2), int(found.group(3))


def say(message: str) -> None:
    """Progress on stderr: a run takes minutes."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Report:
    """Everything one load run measured; memory in KiB."""

    users: int
    requests: int
    deadline: float
    single: dict[str, Request]  # by photo, alone
    load: list[Request]
    load_seconds: float  # from the start to the last answer of the users
    probe: Probe
    run_id: str
    epochs_before: int  # recorded by the long job when the load began
    epochs_after: int  # when it ended
    final_status: str  # after /finetune_stop
    rss_start: int  # the app idle, just after it answered
    rss_before_load: int  # models loaded, the long job training
    rss_load: list[int]  # the samples during the load
    rss_end: int
    busy: tuple[float, float]  # the machine's 1-minute load average before "alone" and after the load

    @property
    def failed(self) -> list[Request]:
        return [r for r in self.load if r.error]

    @property
    def mismatched(self) -> list[Request]:
        """Answers under load that differ from the same photo's answer alone."""
        return [r for r in self.load if not r.error and r.card != self.single[r.photo].card]

    @property
    def not_sent(self) -> int:
        return self.users * self.requests - len(self.load)

    @property
    def latencies(self) -> np.ndarray:
        return np.array([r.seconds for r in self.load if not r.error])

    def rss_peaks(self, parts: int) -> list[int]:
        """Peak RSS in each of `parts` equal spans of the load's samples, in order: a leak shows as a rise."""
        cuts = [len(self.rss_load) * i // parts for i in range(parts + 1)]
        return [max(self.rss_load[a:b], default=0) for a, b in zip(cuts, cuts[1:])]


def run(url: str, pid: int, generation: str | Path, users: int, requests: int, deadline: float, probe: int = 12,
        chosen: list[photos.Photo] | None = None, timeout: float = 300.0) -> Report:
    """The whole load run against the app at `url` (process `pid`): alone, long job, load, stop.
    `timeout` bounds each wait outside the load (a request alone, the first epoch, the stop)."""
    chosen = chosen or [p for p in photos.photos() if p.path.is_file()]
    memory = MemorySampler(pid).start()
    rss_start, busy_before = memory.now(), os.getloadavg()[0]
    try:
        control = Client(url, verbose=False)
        say(f"alone: a warm-up request, then {len(chosen)} photos one at a time")
        single = alone(control, chosen, timeout)
        say("launching the long fine-tuning run")
        run_id = control.predict(str(generation), *settings(LONG_JOB_EPOCHS, LONG_JOB_EPOCHS, batch=1),
                                 api_name="/finetune_launch")[0]
        wait_for(lambda: shown(control, run_id)[1] >= 1, f"run {run_id} to record an epoch", timeout, every=0.5)

        clients = [Client(url, verbose=False) for _ in range(users + 1)]  # connected before the clock starts
        load: list[Request] = []
        probed = Probe(chosen[0].name)
        end = Deadline()
        go = threading.Barrier(users + 2, action=lambda: setattr(end, "at", time.monotonic() + deadline))
        threads = [threading.Thread(target=user, args=(clients[u], u, requests, chosen, go, end, load))
                   for u in range(users)]
        threads.append(threading.Thread(target=order_probe, args=(clients[-1], probed, chosen[0], probe, go, end)))
        for thread in threads:
            thread.start()
        epochs_before = shown(control, run_id)[1]
        rss_before = memory.now()
        go.wait()
        began = end.at - deadline
        say(f"load: {users} users x {requests} requests and a probe of {probe}; run {run_id} at epoch {epochs_before}")
        for thread in threads:
            thread.join()
        ended = max((r.end for r in load), default=began)
        epochs_after = shown(control, run_id)[1]

        say(f"load done; stopping run {run_id}")
        control.predict(run_id, api_name="/finetune_stop")
        status = wait_for(lambda: (s := shown(control, run_id)[0]) in ("stopped", "failed", "completed") and s,
                          f"run {run_id} to stop", timeout, every=0.5)
    finally:
        memory.stop()
    return Report(users, requests, deadline, single, load, ended - began, probed, run_id, epochs_before, epochs_after,
                  status, rss_start, rss_before, memory.between(began, ended), memory.now(),
                  (busy_before, os.getloadavg()[0]))


def print_report(report: Report) -> None:
    lat, single = report.latencies, np.array([r.seconds for r in report.single.values()])
    ok, probe = len(lat), report.probe
    p50, p90, p99 = np.percentile(lat, [50, 90, 99]) if ok else (float("nan"),) * 3
    throughput = ok / report.load_seconds if report.load_seconds else 0.0
    reference = report.single[probe.photo].card
    first, second = report.rss_peaks(2)
    peak = max(report.rss_load, default=0)
    print(f"machine  {os.cpu_count()} cores; 1-minute load average {report.busy[0]:.1f} before the single-user "
          f"requests, {report.busy[1]:.1f} after the load (above ~1 before: other work shared the cores)")
    print(f"load     {report.users} users x {report.requests} requests to {SCORE} (each user its own gradio_client, "
          f"back to back), one fine-tuning run training, deadline {report.deadline:.0f} s")
    print(f"requests ok {ok}, failed {len(report.failed)}, not sent before the deadline {report.not_sent}; answers "
          f"equal to the photo's single-user answer: {ok - len(report.mismatched)} of {ok}")
    for r in report.failed[:5]:
        print(f"   failed: user {r.user} {r.photo}: {r.error}")
    print(f"time     {report.load_seconds:.1f} s for the load; throughput {throughput:.2f} req/s")
    print(f"latency  under load p50 {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s, max {lat.max() if ok else 0:.2f} s "
          "(submit to answer: upload, queue wait, scoring)")
    print(f"alone    one user, one request at a time, same app before the long job ({len(single)} photos): p50 "
          f"{np.median(single):.2f} s, max {single.max():.2f} s; throughput {1 / single.mean():.2f} req/s")
    print(f"ratio    latency p50 under load / alone: {p50 / np.median(single):.1f}x; throughput under load / "
          f"alone: {throughput * single.mean():.1f}x (concurrency {CONCURRENCY}, while the run trains)")
    print(f"order    probe: {len(probe.cards)} requests of one client to {probe.photo}, each sent once the one before "
          f"was queued, with {probe.ranks} requests waiting ahead; largest lag of completion behind submission: "
          f"{largest_lag(probe.finished)} place(s) (bound {CONCURRENCY}); completion order {probe.finished}; "
          f"answers correct {sum(card == reference for card in probe.cards)} of {len(probe.cards)}")
    for error in probe.errors[:3]:
        print(f"   probe failed: {error}")
    print(f"memory   app RSS at start {report.rss_start / MIB:.0f} MiB; before the load (models loaded, run training) "
          f"{report.rss_before_load / MIB:.0f} MiB; peak during the load {peak / MIB:.0f} MiB "
          f"({(peak - report.rss_before_load) / MIB:+.0f} MiB); at the end {report.rss_end / MIB:.0f} MiB. Peak in "
          f"the load's first half {first / MIB:.0f} MiB, second half {second / MIB:.0f} MiB (growth "
          f"{(second - first) / MIB:+.0f} MiB); by quarter {', '.join(f'{q / MIB:.0f}' for q in report.rss_peaks(4))} "
          f"MiB ({len(report.rss_load)} samples, every 0.5 s)")
    print(f"long job run {report.run_id}: {report.epochs_before} epochs recorded when the load began, "
          f"{report.epochs_after} when it ended ({report.epochs_after - report.epochs_before:+d}); after "
          f"/finetune_stop: {report.final_status}")


def make_generation(root: Path) -> Path:
    """A generation of two packaged photos (cat, orange; copied under `root`) by `synood select` and `synood generate
    --suite offline`; CalledProcessError if either fails (generate does when an item fails)."""
    synood = str(Path(sys.executable).with_name("synood"))
    train, selection, generation = root / "train", root / "sel.jsonl", root / "gen"
    for wnid, name in {"n02124075": "cat", "n07747607": "orange"}.items():
        photo = photos.by_name(name)
        (train / wnid).mkdir(parents=True)
        shutil.copy(photo.path, train / wnid / f"{name}{photo.path.suffix}")  # inside the data root
    for args in (["select", "--train", str(train), "--per-class", "1", "--out", str(selection)],
                 ["generate", "--suite", "offline", "--selection", str(selection), "--out", str(generation)]):
        subprocess.run([synood, *args], check=True, capture_output=True, cwd=ROOT,
                       timeout=580)  # 580 s: the first offline mining in a fresh home
    return generation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=24, help="concurrent users (default 24)")
    parser.add_argument("--requests", type=int, default=10, help="requests per user (default 10)")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds the load may take (default 900)")
    parser.add_argument("--probe", type=int, default=12, help="requests of the order probe (default 12)")
    parser.add_argument("--generation", help="generation folder for the long job, its source images under its parent "
                                             "folder (the app's data root); default: make one of 2 photos")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synood-load-") as tmp:
        if not args.generation:
            say("making a generation of 2 photos for the long job (synood select, synood generate)")
        generation = Path(args.generation or make_generation(Path(tmp))).resolve()
        say("starting the app")
        with serving("--suite", "offline", "--data-root", str(generation.parent), log=Path(tmp) / "app.log") as app:
            report = run(app.url, app.pid, generation, args.users, args.requests, args.deadline, args.probe)
    print_report(report)


if __name__ == "__main__":
    main()
