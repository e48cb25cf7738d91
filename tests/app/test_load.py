"""Load, for real: 20 gradio_client users at once score packaged photos on the Negative labels tab while a long
fine-tuning run trains in the same app (bench/load.py's driver with smaller numbers). No request fails, every answer
equals that photo's answer alone, memory stays bounded, the queue serves in order, and the run keeps training and
stops cleanly. Only generous timeouts; nothing here is about speed."""
import os
import subprocess
import sys

import pytest

from bench import load
from bench.common.serve import serving
from synood.data import photos

pytestmark = pytest.mark.timeout(1200)  # run alone, the first test also builds the session's generation (cold mining)
USERS, REQUESTS, PROBE = 20, 3, 8
PHOTOS = ("cat", "coffee", "orange", "brick", "moon", "page")  # 3 ID, 3 OOD: the references take one request each
GIB = 1024 * 1024  # KiB


@pytest.fixture(scope="module")
def report(offline_generation, data_root, tmp_path_factory) -> load.Report:
    with serving("--suite", "offline", "--data-root", str(data_root),
                 log=tmp_path_factory.mktemp("load-app") / "app.log") as app:
        found = load.run(app.url, app.pid, offline_generation, USERS, REQUESTS, deadline=300, probe=PROBE,
                         chosen=[photos.by_name(name) for name in PHOTOS])
    load.print_report(found)  # shown with -s or on failure
    return found


def test_every_request_is_answered_with_its_photos_score(report):
    assert report.not_sent == 0 and len(report.load) == USERS * REQUESTS
    assert not report.failed, [f"user {r.user} {r.photo}: {r.error}" for r in report.failed]
    assert not report.mismatched, [(r.photo, r.card, report.single[r.photo].card) for r in report.mismatched]
    scores = {name: load.score_in(request.card) for name, request in report.single.items()}
    assert all(0 <= s <= 1 for s in scores.values())
    assert min(scores[n] for n in PHOTOS[:3]) > max(scores[n] for n in PHOTOS[3:])  # the detector still works


def test_queue_serves_in_order(report):
    probe = report.probe
    assert not probe.errors and sorted(probe.finished) == list(range(PROBE))
    assert probe.cards == [report.single[probe.photo].card] * PROBE
    assert max(probe.ranks) >= load.CONCURRENCY, probe.ranks  # it ran against a backlog, where order shows
    assert load.largest_lag(probe.finished) <= load.CONCURRENCY, probe.finished


def test_memory_stays_bounded(report):
    assert len(report.rss_load) >= 4  # sampled through the load
    peak = max(report.rss_load)
    assert peak - report.rss_before_load < 1.5 * GIB
    first, second = report.rss_peaks(2)
    assert second - first < 0.25 * GIB  # no growth from the first half of the requests to the second
    assert report.rss_end - report.rss_before_load < 1.5 * GIB


def test_long_job_trains_through_the_load_and_stops(report):
    assert 1 <= report.epochs_before < report.epochs_after
    assert report.final_status == "stopped"


def test_lag_counts_places_behind():
    assert load.largest_lag([0, 1, 2, 3]) == 0
    assert load.largest_lag([1, 0, 2, 3]) == 1
    assert load.largest_lag([3, 2, 1, 0]) == 3
    assert load.largest_lag([]) == 0


def test_memory_reading_counts_the_children():
    """rss_kib follows child processes: a child holding 200 MiB adds about that much to its parent's reading."""
    before = load.rss_kib(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; b = b'x' * (200 << 20); print(flush=True); "
                              "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # the 200 MiB are written
        assert load.rss_kib(child.pid) >= 200 * 1024
        assert load.rss_kib(os.getpid()) - before >= 190 * 1024
    finally:
        child.kill()
        child.wait()
