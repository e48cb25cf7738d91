"""`synood mine`, `synood score` and `synood evaluate` through the installed entry point.

The first offline mining encodes ~81k WordNet prompts (~100 s on 2 cores) into the session's private
SYNOOD_HOME; the session fixture `mined_tsv` pays that once and every other run reads the cache.
"""
import csv
import json
import math
import os

import pytest

from synood.data import photos
from synood.cli.common import StageBars
from synood.method.metrics import CONVENTIONS
from synood.data.wordnet import candidates
from tests.helpers.cli import ok, synood

SLOW = 580  # seconds for one command: the first mining, or a machine shared with other jobs
TEXTURES = ("brick", "grass", "gravel")
DOCS = ("page", "text", "notes", "blurred-text")
METHODS = ("neglabel", "mcm", "msp", "energy")


@pytest.fixture(scope="session")
def mined_tsv(tmp_path_factory):
    out = tmp_path_factory.mktemp("mine") / "negatives.tsv"
    result = ok(synood("mine", "--suite", "offline", "--out", str(out), timeout=SLOW))
    return out, result


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    """ID, textures and docs folders of symlinked packaged photos, plus an unreadable file among the docs."""
    root = tmp_path_factory.mktemp("sets")
    chosen = {"id": photos.photos("id"), "textures": [photos.by_name(n) for n in TEXTURES],
              "docs": [photos.by_name(n) for n in DOCS]}
    for name, items in chosen.items():
        (root / name).mkdir()
        for photo in items:
            if photo.path.is_file():
                os.symlink(photo.path, root / name / f"{photo.name}{photo.path.suffix}")
    (root / "docs" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_mine_writes_a_tsv_with_the_expected_counts(mined_tsv):
    out, result = mined_tsv
    lines = out.read_text().splitlines()
    assert lines[0] == "word\tpos\tlexname\tpercentile"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(row) == 4 for row in rows)
    for pos in ("noun", "adj"):
        values = [float(row[3]) for row in rows if row[1] == pos]
        assert len(values) == int(0.15 * len(candidates(pos))), pos
        assert values == sorted(values)
        assert all(row[2].startswith(f"{pos}.") for row in rows if row[1] == pos)
    summary = result.stderr
    for text in ("noun", "adj", "percentile 95", "keep_ratio 0.15", "prune_csp false", " s;"):
        assert text in summary, text
    mined = "Encoding WordNet nouns" in summary and "Encoding WordNet adjectives" in summary
    assert mined or "Loading the cached negative labels" in summary  # its stages, or the cache an earlier run left
    assert result.stdout == ""


def test_mine_json_to_stdout_matches_the_tsv(mined_tsv):
    out, _ = mined_tsv
    result = ok(synood("mine", "--suite", "offline", "--format", "json", timeout=SLOW))
    rows = json.loads(result.stdout)
    assert set(rows[0]) == {"word", "pos", "lexname", "percentile"}
    tsv = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    assert [(r["word"], r["pos"], r["lexname"]) for r in rows] == [tuple(row[:3]) for row in tsv]
    assert all(abs(r["percentile"] - float(row[3])) < 1e-6 for r, row in zip(rows, tsv))


@pytest.fixture(scope="module")
def scored(mined_tsv, tmp_path_factory):
    """`score --json` on coffee and brick, and the human output with a non-image among them."""
    bad = tmp_path_factory.mktemp("bad") / "notes.png"
    bad.write_text("not an image")
    coffee, brick = str(photos.by_name("coffee").path), str(photos.by_name("brick").path)
    as_json = ok(synood("score", "--suite", "offline", "--json", coffee, brick, timeout=SLOW))
    human = ok(synood("score", "--suite", "offline", "--top", "3", coffee, str(bad), brick, timeout=SLOW), code=1)
    return json.loads(as_json.stdout), human, str(bad)


def test_score_json_ranks_coffee_above_brick(scored):
    report, _, _ = scored
    coffee, brick = report["images"]
    assert report["errors"] == [] and report["suite"] == "offline"
    assert set(coffee) == {"image", "scores", "top_id", "top_negative"} and set(coffee["scores"]) == set(METHODS)
    assert len(coffee["top_id"]) == len(coffee["top_negative"]) == 5
    assert set(coffee["top_id"][0]) == {"label", "similarity"}
    assert "espresso" in [t["label"] for t in coffee["top_id"]]
    assert coffee["scores"]["neglabel"] > brick["scores"]["neglabel"]
    sims = [t["similarity"] for t in coffee["top_negative"]]
    assert sims == sorted(sims, reverse=True)


def test_score_names_an_unreadable_image_and_scores_the_others(scored):
    _, human, bad = scored
    assert f"synood: error: {bad}: not an image" in human.stderr
    blocks = human.stdout.split("\n" + str(photos.by_name("brick").path))
    assert len(blocks) == 2 and bad not in human.stdout
    coffee = blocks[0]
    for text in ("NegLabel", "MCM", "MSP", "Energy", "ID labels", "negatives", "espresso"):
        assert text in coffee
    id_line = next(line for line in coffee.splitlines() if line.strip().startswith("ID labels"))
    assert id_line.count(",") == 2  # --top 3


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def evaluated(mined_tsv, folders, tmp_path_factory):
    """One evaluation twice: the default table with its --csv, and --json --convention all with its --csv."""
    out = tmp_path_factory.mktemp("eval")
    args = ("evaluate", "--suite", "offline", "--id", str(folders / "id"),
            "--ood", f"textures={folders / 'textures'}", "--ood", f"docs={folders / 'docs'}")
    table = ok(synood(*args, "--csv", str(out / "mos.csv"), timeout=SLOW))
    as_json = ok(synood(*args, "--json", "--convention", "all", "--csv", str(out / "all.csv"), timeout=SLOW))
    return table, json.loads(as_json.stdout), _rows(out / "mos.csv"), _rows(out / "all.csv")


def test_evaluate_prints_the_papers_table(evaluated, folders):
    table, _, _, _ = evaluated
    text = table.stdout
    for word in ("textures", "docs", "Average", "AUROC", "FPR95", "NegLabel", "MCM", "MSP", "Energy",
                 f"Convention mos: {CONVENTIONS['mos']}"):
        assert word in text, word
    assert text.count("Convention ") == 1 and "Convention openood" not in text  # the default: the paper's one
    for title in ("NegLabel", "MCM", "MSP", "Energy -E(x)"):
        row = next(line for line in text.splitlines() if line.startswith(title))
        values = [float(v) for v in row[len(title):].split()]
        assert len(values) == 6 and all(0 <= v <= 100 for v in values)
        assert math.isclose(values[4], (values[0] + values[2]) / 2, abs_tol=0.011)  # average AUROC
    assert f"skipped {folders / 'docs' / 'broken.jpg'}: not an image" in table.stderr


def test_evaluate_json_csv_and_table_agree(evaluated):
    table, result, mos_rows, all_rows = evaluated
    assert result["suite"] == "offline" and result["unit"] == "percent"
    assert result["conventions"] == CONVENTIONS and list(result["conventions"]) == ["mos", "openood", "neglabel"]
    assert result["id"]["count"] == len(photos.photos("id"))
    assert result["ood"]["docs"]["skipped"] == 1
    assert set(result["methods"]) == set(METHODS)
    assert len(mos_rows) == 2 * len(METHODS) and {row["convention"] for row in mos_rows} == {"mos"}
    assert len(all_rows) == 3 * 2 * len(METHODS)
    assert [row["convention"] for row in all_rows[:3]] == list(CONVENTIONS)
    for row in mos_rows + all_rows:
        entry = result["methods"][row["method"]]["sets"][row["ood_set"]][row["convention"]]
        assert entry["convention"] == row["convention"]
        for key in ("auroc", "fpr95", "aupr_in", "aupr_out"):
            assert math.isclose(float(row[key]), entry[key], abs_tol=1e-9) and 0 <= entry[key] <= 100
        assert int(row["ood_count"]) == entry["ood_count"] == result["ood"][row["ood_set"]]["count"]
    for method in result["methods"].values():
        for entries in [*method["sets"].values(), method["average"]]:
            assert list(entries) == list(CONVENTIONS)
            assert all(entries[c]["convention"] == c for c in CONVENTIONS)
            assert entries["mos"]["auroc"] == entries["openood"]["auroc"] == entries["neglabel"]["auroc"]
            for key in ("aupr_in", "aupr_out"):  # both use average precision
                assert math.isclose(entries["mos"][key], entries["neglabel"][key], abs_tol=1e-9)
    neglabel = result["methods"]["neglabel"]
    row = next(line for line in table.stdout.splitlines() if line.startswith("NegLabel"))
    cells = [*(s["mos"] for s in neglabel["sets"].values()), neglabel["average"]["mos"]]
    assert row.split()[1:] == [f"{c[key]:.2f}" for c in cells for key in ("auroc", "fpr95")]
    assert math.isclose(neglabel["average"]["mos"]["fpr95"], sum(c["fpr95"] for c in cells[:2]) / 2)


def test_evaluate_refuses_an_unknown_convention_before_loading_models(folders):
    result = synood("evaluate", "--suite", "offline", "--id", str(folders / "id"),
                    "--ood", f"docs={folders / 'docs'}", "--convention", "hendrycks")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("synood: error: --convention 'hendrycks': "
                                     "choose from mos, openood, neglabel or all")


@pytest.mark.parametrize("ood, words", [
    ("nonsense", "expected NAME=DIR"),
    ("docs={missing}", "no such folder"),
    ("docs={empty}", "no image files"),
])
def test_evaluate_bad_input_is_a_message(tmp_path, folders, ood, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    ood = ood.format(missing=tmp_path / "missing", empty=tmp_path / "empty")
    result = synood("evaluate", "--suite", "offline", "--id", str(folders / "id"), "--ood", ood)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("synood: error: ") and words in result.stderr


def test_mine_score_and_evaluate_on_the_tiny_suite(tmp_path, folders):
    """Random weights: only the structure means something. The tiny encoder's init is seeded, so its
    text features and mined labels are cached like real ones: the first command mines, the others read the cache."""
    mined = tmp_path / "tiny.tsv"
    result = ok(synood("mine", "--suite", "tiny", "--out", str(mined), timeout=SLOW))
    assert "random weights" in result.stderr and mined.read_text().startswith("word\tpos\tlexname\tpercentile\n")
    result = ok(synood("score", "--suite", "tiny", "--json", "--top", "2", str(photos.by_name("cat").path),
                       timeout=SLOW))
    assert "Loading the cached negative labels" in result.stderr and "Encoding WordNet" not in result.stderr
    (entry,) = json.loads(result.stdout)["images"]
    assert set(entry["scores"]) == set(METHODS) and len(entry["top_id"]) == len(entry["top_negative"]) == 2
    result = ok(synood("evaluate", "--suite", "tiny", "--json", "--id", str(folders / "id"),
                       "--ood", f"textures={folders / 'textures'}", timeout=SLOW))
    assert set(json.loads(result.stdout)["methods"]) == set(METHODS)


def test_stage_bars_start_one_bar_per_named_stage(capsys):
    bars = StageBars()
    for stage, done, total in [("Encoding ID label prompts", 1000, 1000), ("Encoding WordNet nouns", 256, 500),
                               ("Encoding WordNet nouns", 500, 500), ("Ranking WordNet nouns", 0, 1),
                               ("Ranking WordNet nouns", 1, 1), ("Encoding WordNet adjectives", 100, 200),
                               ("Encoding WordNet adjectives", 50, 200), ("Encoding WordNet adjectives", 200, 200)]:
        bars(stage, done, total)
    bars.close()
    err = capsys.readouterr().err
    assert "Encoding ID label prompts: 100%" in err and "Encoding WordNet nouns: 100%" in err
    assert "Ranking WordNet nouns: 100%" in err and "1/1" in err
    assert "Encoding WordNet adjectives:  50%" in err  # `done` went back: a new bar
    assert err.count("Encoding WordNet adjectives: 100%") == 1

