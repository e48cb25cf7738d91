"""Stage 1 as a batch job: `synood select`, the manifest's durability, and `synood generate` through the
installed entry point: resumable, refusing mixed settings, and the same items from 1 or 2 processes."""
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from synood.config import SynthesisConfig
from synood.pipelines.generation import prepare
from synood.data.manifest import Manifest, cut_torn_tail, read_lines
from synood.data.selection import read_selection, select, write_selection
from tests.helpers.cli import ok, synood
from tests.helpers.generation import generate, records


def jpeg_with_bytes(path: Path, size: tuple[int, int], total: int) -> None:
    """A JPEG of `size` pixels padded after its end marker to exactly `total` bytes (readers ignore the tail)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    assert len(data) < total
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + b"\0" * (total - len(data)))


# --- selection ---------------------------------------------------------------------------------------------

def test_select_ranks_bytes_per_pixel_as_numbers(tmp_path):
    # 10 x 10 = 100 pixels: 950 bytes -> 9.5 B/px, 1020 -> 10.2, 1500 -> 15.0, 800 -> 8.0.
    # As strings "9.5" > "8.0" > "15.0" > "10.2"; as numbers 15.0 > 10.2 > 9.5 > 8.0.
    for name, total in [("a.jpg", 950), ("b.jpg", 1020), ("c.jpg", 1500), ("d.jpg", 800)]:
        jpeg_with_bytes(tmp_path / "train" / "n01440764" / name, (10, 10), total)
    chosen, problems = select(tmp_path / "train", per_class=3)
    assert problems == []
    assert [item.id for item in chosen] == ["n01440764/c.jpg", "n01440764/b.jpg", "n01440764/a.jpg"]
    assert [item.bytes_per_pixel for item in chosen] == [15.0, 10.2, 9.5]
    assert {(item.class_index, item.class_name) for item in chosen} == {(0, "tench")}


def test_select_maps_class_folders_and_reports_bad_files(tmp_path):
    train = tmp_path / "train"
    jpeg_with_bytes(train / "coffee_mug" / "x.jpg", (20, 10), 2000)
    jpeg_with_bytes(train / "Holiday snaps" / "y.jpg", (20, 10), 2000)
    jpeg_with_bytes(train / "n02123045" / "deeper" / "z.jpg", (20, 10), 2000)
    (train / "coffee_mug" / "broken.jpg").write_bytes(b"not a jpeg")
    chosen, problems = select(train, per_class=5)
    by_class = {item.cls: item for item in chosen}
    assert (by_class["coffee_mug"].class_index, by_class["coffee_mug"].class_name) == (504, "coffee mug")
    assert (by_class["n02123045"].class_index, by_class["n02123045"].class_name) == (281, "tabby cat")
    assert by_class["n02123045"].id == "n02123045/deeper/z.jpg"
    assert (by_class["Holiday snaps"].class_index, by_class["Holiday snaps"].class_name) == (None, "Holiday snaps")
    assert len(problems) == 1 and "broken.jpg" in problems[0] and "not an image" in problems[0]
    path = tmp_path / "selection.jsonl"
    write_selection(path, chosen)
    assert read_selection(path) == chosen


def test_flat_folder_is_one_class_named_after_it(tmp_path):
    jpeg_with_bytes(tmp_path / "goldfish" / "one.jpg", (8, 8), 700)
    (chosen,), _ = select(tmp_path / "goldfish", per_class=1)
    assert (chosen.id, chosen.cls, chosen.class_index) == ("one.jpg", "goldfish", 1)


def test_bad_selection_files_are_named(tmp_path):
    path = tmp_path / "sel.jsonl"
    path.write_text('{"id": "a", "source": "/x/a.jpg", "class": "c"}\n{"id": "a", "source": "/x/a.jpg", "class": "c"}\n')
    with pytest.raises(ValueError, match=r"sel.jsonl, line 2: a is listed twice"):
        read_selection(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"sel.jsonl, line 1: not a selection record"):
        read_selection(path)


# --- manifest ----------------------------------------------------------------------------------------------

def test_a_torn_tail_is_skipped_by_readers_and_cut_before_the_next_append(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.append(0, {"id": "a", "n": 1})
    with open(manifest.part(0), "ab") as f:
        f.write(b'{"id": "b", "n"')  # a crash in the middle of a write
    assert [r["id"] for r in read_lines(manifest.part(0))] == ["a"]
    manifest.append(0, {"id": "c", "n": 3})
    assert manifest.part(0).read_text() == '{"id": "a", "n": 1}\n{"id": "c", "n": 3}\n'


def test_cut_torn_tail_across_blocks(tmp_path):
    path = tmp_path / "part.jsonl"
    path.write_bytes(b'{"id": "a"}\n' + b"x" * 200_000)
    with open(path, "ab+") as f:
        cut_torn_tail(f)
    assert path.read_bytes() == b'{"id": "a"}\n'


def test_merge_orders_by_selection_never_duplicates_and_keeps_other_ranks_parts(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.append(1, {"id": "c"})
    manifest.append(0, {"id": "b"})
    manifest.append(1, {"id": "a"})
    assert manifest.merge(["a", "b", "c"], rank=0) == 3
    assert [r["id"] for r in read_lines(manifest.path)] == ["a", "b", "c"]
    assert not manifest.part(0).exists() and manifest.part(1).exists()  # rank 1 may still be appending
    manifest.append(1, {"id": "a"})  # a rerun that repeats a finished item
    assert manifest.merge(["a", "b", "c"], rank=1) == 3
    assert [r["id"] for r in read_lines(manifest.path)] == ["a", "b", "c"] and not manifest.parts.exists()


def test_prepare_hands_the_context_labels_to_the_generator():
    class Recording:
        def prepare(self, image, settings):
            self.call = settings
            return "canvas"

    generator = Recording()
    settings = SynthesisConfig()
    assert prepare(generator, Image.new("RGB", (8, 8)), "A photo only remain sofa, rug", 3, settings,
                   ["sofa", "rug"]) == "canvas"
    passed = generator.call
    assert (passed.prompt, passed.seed, passed.context) == ("A photo only remain sofa, rug", 3, ("sofa", "rug"))
    assert passed.strength == settings.strength and passed.gradient == settings.gradient
    prepare(generator, Image.new("RGB", (8, 8)), "A photo only remain", 3, settings)
    assert generator.call.context == ()


# --- synood generate (tiny suite) ---------------------------------------------------------------------------

def test_generate_resumes_without_redoing_or_duplicating(single, selection):
    out, first, rest = single
    assert "generated 2, skipped 2 finished before, 0 failed" in rest.stderr
    assert "lists 4 of 4 items" in rest.stderr
    items = records(out)
    assert [r["id"] for r in items] == [item.id for item in read_selection(selection)]
    for record in items:
        assert (out / record["image"]).is_file()
        assert len(record["iterations"]) == 3 and record["energy_after"] == record["iterations"][-1]["energy"]
        assert record["prompt"].startswith("A photo only remain") and isinstance(record["seed"], int)
        assert record["negative_label"] and 0 <= record["id_score_after"] <= 1
        assert record["generator"] == "tiny SD2-inpainting"
    assert "iteration 3/3 loss" in first.stderr
    assert json.loads((out / "generation.json").read_text())["synthesis"]["loss"] == "squared"


def test_generate_refuses_a_folder_made_with_other_settings(single, selection):
    out, _, _ = single
    before = (out / "manifest.jsonl").read_bytes()
    result = ok(generate("--selection", str(selection), "--out", str(out), "--loss", "hinge"), code=2)
    assert "generated with other settings: synthesis (loss) differ" in result.stderr
    assert (out / "manifest.jsonl").read_bytes() == before


def test_two_processes_make_the_same_items_as_one(single, selection, tmp_path):
    out, _, _ = single
    result = ok(generate("--selection", str(selection), "--out", str(tmp_path / "two"), processes=2))
    assert "[0] generated 2" in result.stderr and "[1] generated 2" in result.stderr
    assert records(tmp_path / "two") == records(out)
    for record in records(out):
        assert (tmp_path / "two" / record["image"]).read_bytes() == (out / record["image"]).read_bytes()
    assert not (tmp_path / "two" / "parts").exists()


def test_bad_generate_arguments_are_one_line_errors(selection, tmp_path):
    result = ok(synood("generate", "--suite", "tiny", "--selection", str(selection), "--out", str(tmp_path / "o"),
                       "--gradient", "exact"), code=2)
    assert "synthesis.gradient: 'exact' is not allowed; choose one of skip, full" in result.stderr
    result = ok(synood("generate", "--suite", "tiny", "--selection", str(tmp_path / "none.jsonl"), "--out",
                       str(tmp_path / "o")), code=2)
    assert "cannot read the selection" in result.stderr
