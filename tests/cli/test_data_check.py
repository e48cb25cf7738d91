"""`synood data check` on miniature MOS and OpenOOD layouts built with the real file formats (JPEG folders as the
releases unpack them, OpenOOD's imglist text files): found, missing, a wrong count, listed files that do not exist,
an unreadable file, and how to obtain what is missing."""
import dataclasses
import json

import pytest
from synood.cli import main
from synood.data import benchmarks
from tests.helpers.benchmarks import OPENOOD_LISTS, jpegs, openood_layout
from tests.helpers.cli import ok, synood


@pytest.fixture
def mos_root(tmp_path):
    """ImageNet val flat, iNaturalist and SUN as MOS unpacks them (SUN under ood_data/, as NegLabel keeps it), DTD
    with class folders; Places missing."""
    jpegs(tmp_path / "imagenet" / "val", 4)
    jpegs(tmp_path / "iNaturalist" / "images", 3)
    jpegs(tmp_path / "ood_data" / "SUN" / "images", 2)
    jpegs(tmp_path / "dtd" / "images" / "banded", 2, "banded")
    jpegs(tmp_path / "dtd" / "images" / "zigzagged", 1, "zig")
    return tmp_path


@pytest.fixture
def openood_root(tmp_path):
    """OpenOOD's data/ folder: imglists naming images under images_largescale/ and images_classic/; one NINCO file
    listed but absent, OpenImage-O's list missing."""
    openood_layout(tmp_path, tuple(name for name in OPENOOD_LISTS if name != "test_openimage_o"))
    with (tmp_path / "benchmark_imglist" / "imagenet" / "test_ninco.txt").open("a") as f:
        f.write("ninco/amphiuma/gone.jpg -1\n")
    return tmp_path


def test_a_mos_layout_is_reported_set_by_set(mos_root):
    result = ok(synood("data", "check", "--benchmark", "mos", "--data-root", str(mos_root), "--json"), code=1)
    report = json.loads(result.stdout)
    rows = {row["set"]: row for row in report["sets"]}
    assert report["ready"] is False and list(rows) == ["ImageNet", "iNaturalist", "SUN", "Places", "Textures"]
    assert rows["ImageNet"]["status"] == "count differs" and rows["ImageNet"]["count"] == 4
    assert rows["ImageNet"]["expected"] == 50_000 and rows["ImageNet"]["where"] == str(mos_root / "imagenet" / "val")
    assert rows["SUN"]["where"] == str(mos_root / "ood_data" / "SUN" / "images") and rows["SUN"]["count"] == 2
    assert rows["Textures"]["count"] == 3  # DTD's class folders, read recursively
    places = rows["Places"]
    assert places["status"] == "missing" and places["count"] == 0
    assert places["looked"] == [str(mos_root / "Places" / "images"), str(mos_root / "ood_data" / "Places" / "images")]
    assert "Places.tar.gz" in places["obtain"]
    human = ok(synood("data", "check", "--benchmark", "mos", "--data-root", str(mos_root)), code=1).stdout
    assert "Places       OOD       missing" in human and "to obtain: the MOS release" in human
    assert human.rstrip().endswith("not ready: see above")


def test_an_openood_layout_is_read_from_its_imglists(openood_root):
    report = json.loads(ok(synood("data", "check", "--benchmark", "openood-v1.5", "--data-root",
                                  str(openood_root), "--json"), code=1).stdout)
    rows = {row["set"]: row for row in report["sets"]}
    assert [(name, row["role"], row["group"]) for name, row in rows.items()] == [
        ("ImageNet", "id", ""), ("SSB-hard", "ood", "near"), ("NINCO", "ood", "near"), ("iNaturalist", "ood", "far"),
        ("Textures", "ood", "far"), ("OpenImage-O", "ood", "far")]
    assert rows["ImageNet"]["count"] == 3 and rows["ImageNet"]["expected"] == 45_000
    assert rows["NINCO"]["status"] == "incomplete" and rows["NINCO"]["absent_examples"] == ["ninco/amphiuma/gone.jpg"]
    assert rows["Textures"]["count"] == 2  # under images_classic/, as OpenOOD keeps it
    assert rows["OpenImage-O"]["status"] == "missing" and "download.py" in rows["OpenImage-O"]["obtain"]


def test_a_complete_layout_is_ready_and_verify_finds_an_unreadable_file(mos_root, monkeypatch, capsys):
    jpegs(mos_root / "Places" / "images", 2)
    counts = {"ImageNet": 4, "iNaturalist": 3, "SUN": 2, "Places": 2, "Textures": 3}
    mos = benchmarks.BENCHMARKS["mos"]
    monkeypatch.setitem(benchmarks.BENCHMARKS, "mos", dataclasses.replace(mos, sets=tuple(
        dataclasses.replace(s, expected=counts[s.name]) for s in mos.sets)))
    assert main(["data", "check", "--benchmark", "mos", "--data-root", str(mos_root)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ready")
    (mos_root / "ood_data" / "SUN" / "images" / "img_1.jpg").write_bytes(b"not a jpeg")
    assert main(["data", "check", "--benchmark", "mos", "--data-root", str(mos_root), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "SUN" in out and "1 files do not decode" in out and "img_1.jpg" in out


@pytest.mark.parametrize("args, message", [
    (("--benchmark", "imagenet-o"), "--benchmark 'imagenet-o': choose one of mos, openood-v1.5"),
    (("--benchmark", "mos", "--data-root", "/no/such/root"), "--data-root /no/such/root: no such folder"),
])
def test_bad_input_is_one_line(args, message):
    args = args if "--data-root" in args else (*args, "--data-root", "/tmp")
    result = ok(synood("data", "check", *args), code=2)
    assert result.stderr.strip() == f"synood: error: {message}"


def test_evaluate_a_benchmark_reports_its_sets_and_near_and_far_averages(openood_root, capsys):
    openood_layout(openood_root, ("test_openimage_o",))
    args = ["evaluate", "--suite", "tiny", "--benchmark", "openood-v1.5", "--data-root", str(openood_root),
            "--scores", "mcm,msp", "--convention", "all", "--json"]
    assert main(args) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert "NINCO: 1 files its list names do not exist" in out.err
    assert report["id"]["count"] == 3 and report["id"]["folder"].endswith("test_imagenet.txt")
    assert {name: s["count"] for name, s in report["ood"].items()} == {
        "SSB-hard": 2, "NINCO": 2, "iNaturalist": 2, "Textures": 2, "OpenImage-O": 2}
    assert report["groups"] == {"near": ["SSB-hard", "NINCO"], "far": ["iNaturalist", "Textures", "OpenImage-O"]}
    for method in ("mcm", "msp"):
        r = report["methods"][method]
        for group, names in report["groups"].items():
            for convention in ("mos", "openood"):
                assert r["groups"][group][convention]["auroc"] == pytest.approx(
                    sum(r["sets"][n][convention]["auroc"] for n in names) / len(names))
    benchmark = report["benchmark"]
    assert benchmark["name"] == "openood-v1.5" and len(benchmark["lists_digest"]) == 64
    assert main([*args[:-1]]) == 0
    table = capsys.readouterr().out
    assert "Average near" in table and "Average far" in table and "OpenImage-O" in table


@pytest.mark.parametrize("args, message", [
    (("--benchmark", "mos"), "--benchmark mos needs --data-root DIR"),
    (("--benchmark", "mos", "--data-root", "ROOT", "--id", "x"), "--benchmark names its own sets: give it without"),
    (("--benchmark", "mos", "--data-root", "ROOT"), "mos under ROOT: no images for Places; `synood data check"),
    ((), "give --id DIR and at least one --ood NAME=DIR, --benchmark NAME --data-root DIR, or --generation DIR"),
    (("--generation", "ROOT", "--id", "x"), "--generation names its own sets"),
    (("--generation", "ROOT"), "ROOT: no manifest.jsonl in this folder"),
])
def test_evaluate_refuses_a_bad_benchmark_call_before_loading_a_model(mos_root, args, message):
    args = [str(mos_root) if a == "ROOT" else a for a in args]
    result = ok(synood("evaluate", "--suite", "tiny", *args), code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"synood: error: {message.replace('ROOT', str(mos_root))}")
