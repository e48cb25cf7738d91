"""Faults: `synood generate` killed with SIGKILL at every kind of moment and resumed; a full disk under every
artifact writer; damaged caches and a damaged run database. Nothing is lost, nothing is listed twice."""
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from synood.data import storage
from ui import featuremap_view, thumbnails
from synood.data.manifest import Manifest
from synood.records.runs import RunError, RunStore
from tests.helpers.cli import ok, synood
from tests.helpers.generation import generate, records

# Runs `synood generate` with one kill point armed: the process SIGKILLs itself there.
KILLER = """
import os, signal, sys
from synood import cli
from synood.pipelines import generation
from synood.data import manifest

point, calls = sys.argv[1], []
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if point == "mid-item":  # during the second item's second iteration: nothing of it on disk
    real_item = generation.generate_item
    def generate_item(item, parts, settings, report):
        calls.append(item.id)
        def dying(step):
            report(step)
            if len(calls) == 2 and step.index == 1:
                die()
        return real_item(item, parts, settings, dying)
    generation.generate_item = generate_item
elif point in ("after-image", "torn-append"):  # the second item's image is in place, its record is not
    real_append = manifest.Manifest.append
    def append(self, rank, record):
        calls.append(record["id"])
        if len(calls) == 2:
            if point == "torn-append":  # half of its line reaches the disk
                with open(self.part(rank), "ab") as f:
                    f.write(b'{"id": "' + record["id"].encode()[:5])
                    f.flush()
                    os.fsync(f.fileno())
            die()
        real_append(self, rank, record)
    manifest.Manifest.append = append
elif point == "mid-merge":  # manifest.jsonl is written; the part file it merged is still there
    real_write = manifest.storage.write_text
    def write_text(path, text):
        real_write(path, text)
        if os.path.basename(str(path)) == "manifest.jsonl":
            die()
    manifest.storage.write_text = write_text
sys.exit(cli.main(sys.argv[2:]))
"""
POINTS = ("mid-item", "after-image", "torn-append", "mid-merge")


def killed_at(point: str, selection_file: Path, out: Path) -> subprocess.CompletedProcess:
    """`synood generate --suite tiny` (one thread, as tests/pipelines/test_generation's `generate` runs it), dying at `point`."""
    command = [sys.executable, "-c", KILLER, point, "generate", "--suite", "tiny", "--selection", str(selection_file),
               "--out", str(out)]
    return subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=580)


def generate_runs(out: Path) -> list[dict]:
    listed = json.loads(ok(synood("runs", "--kind", "generate", "--json")).stdout)
    return sorted((r for r in listed if r["inputs"]["out"] == str(out)), key=lambda r: r["created"])


@pytest.mark.parametrize("point", POINTS)
def test_generate_killed_then_resumed_equals_an_uninterrupted_run(point, selection, single, tmp_path):
    reference, _, _ = single
    out = tmp_path / "gen"
    killed = killed_at(point, selection, out)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert generate_runs(out)[0]["status"] == "interrupted"
    half_done = Manifest(out).records()
    assert len({r["id"] for r in half_done}) == len(half_done) and all((out / r["image"]).is_file() for r in half_done)

    resumed = ok(generate("--selection", str(selection), "--out", str(out)))
    assert f"skipped {len(half_done)} finished before" in resumed.stderr
    assert records(out) == records(reference)  # the same items, once each, in selection order
    for record in records(out):
        assert (out / record["image"]).read_bytes() == (reference / record["image"]).read_bytes()
    assert not (out / "parts").exists()
    assert sorted(p.name for p in (out / "images").rglob("*.png")) == sorted(
        Path(r["image"]).name for r in records(out))  # no orphan image, no missing one
    assert not list(out.rglob("*.tmp"))
    killed_run, resumed_run = generate_runs(out)
    assert (killed_run["status"], resumed_run["status"]) == ("interrupted", "completed")
    assert resumed_run["summary"]["merged"] == resumed_run["summary"]["items"] == 4


# --- a full disk ----------------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted for this test (needs root; CI runs as root): a disk that really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Write filler until the disk refuses another byte."""
    with open(disk / "filler", "wb", buffering=0) as f:
        for block in (65536, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def writers(disk: Path) -> dict:
    """Each artifact writer of the library, as (path it writes, write(version)) on `disk`."""
    big = 300_000  # each version is bigger than what a full disk can take

    def tensors(version: int) -> None:
        storage.save_tensors(disk / "features.safetensors", {"x": torch.full((big // 4,), float(version))})

    def text(version: int) -> None:
        storage.write_text(disk / "generation.json", json.dumps({"version": version, "pad": "x" * big}))

    def manifest(version: int) -> None:
        folder = Manifest(disk / "gen")
        folder.append(0, {"id": f"item-{version}", "pad": "x" * 100})
        folder.merge([f"item-{v}" for v in range(version + 1)], 0)

    def image(version: int) -> None:
        picture = Image.effect_noise((700, 700), 60 + version).convert("RGB")
        with storage.atomic_path(disk / "thumb.jpg") as tmp:
            picture.save(tmp, "JPEG", quality=95)

    return {"tensors": (disk / "features.safetensors", tensors), "text": (disk / "generation.json", text),
            "manifest": (disk / "gen" / "manifest.jsonl", manifest), "image": (disk / "thumb.jpg", image)}


@pytest.mark.parametrize("kind", ["tensors", "text", "manifest", "image"])
def test_a_full_disk_keeps_the_previous_artifact(small_disk, kind):
    path, write = writers(small_disk)[kind]
    write(0)
    before = path.read_bytes()
    fill(small_disk)
    with pytest.raises(OSError) as raised:
        write(1)
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == before  # the previous version, whole
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp")]  # no half-written temporary left
    (small_disk / "filler").unlink()
    write(2)  # space again: the writer works
    assert path.read_bytes() != before


# --- damaged files ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [b"", b"\xff\xd8\xff\xe0 torn", b"not a jpeg at all"])
def test_a_damaged_thumbnail_is_rebuilt(tmp_path, monkeypatch, damage):
    monkeypatch.setattr(thumbnails, "thumbnail_dir", lambda: tmp_path / "thumbs")
    monkeypatch.setattr(featuremap_view, "thumbnail_dir", lambda: tmp_path / "thumbs")
    source = tmp_path / "a.png"
    Image.effect_noise((64, 48), 40).convert("RGB").save(source)
    pair = SimpleNamespace(source=source, image=source)  # all a thumbnail reads of a pair
    built = thumbnails.thumbnail(pair)
    point = featuremap_view.thumbnail(source, featuremap_view.thumbnail_path("abc"))
    good = built.read_bytes(), point.read_bytes()
    for path in (built, point):
        path.write_bytes(damage)
    assert thumbnails.thumbnails([pair]) == [built] and thumbnails.thumbnail(pair) == built
    assert featuremap_view.thumbnail(source, point) == point
    assert (built.read_bytes(), point.read_bytes()) == good
    for path in (built, point):
        with Image.open(path) as image:
            image.load()


def test_a_damaged_run_database_is_named_and_left_alone(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).create("evaluate", {}, {})
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RunError, match=f"{path}: not a readable run database .*move it aside"):
        RunStore(path)
    assert path.read_bytes() == b"this is not a database" * 100  # the user's records are never overwritten
    shutil.move(path, tmp_path / "old.sqlite")
    assert RunStore(path).list() == []
