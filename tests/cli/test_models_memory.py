"""`synood models` shows each component's size and memory; `--memory-limit` refuses a load with one message."""
import json

from synood.models.memory import footprint
from synood.models.suites import SUITES
from tests.helpers.cli import synood


def test_models_shows_sizes_estimates_and_the_dtype_here():
    result = synood("models", "--json", "--suite", "paper")
    assert result.returncode == 0, result.stderr
    rows = {row["role"]: row for row in json.loads(result.stdout)["suites"][0]["components"]}
    labeller, generator = rows["labeller"], rows["generator"]
    assert labeller["parameters"] == 7_063_427_200 and "config.json" in labeller["counted_from"]
    assert labeller["download_bytes"] == 7_063_427_200 * 2 and labeller["disk_bytes"] is None
    assert set(labeller["estimates"]) == {"float32", "bfloat16", "float16"}
    assert labeller["estimates"]["float32"] > 2 * labeller["estimates"]["bfloat16"] - 2**30
    assert generator["parameters"] == 865_925_124 + 83_653_863 + 340_387_840
    assert all(row["dtype"] in ("float32", "bfloat16") for row in rows.values())
    text = synood("models", "--suite", "tiny").stdout
    assert "3,704,356 parameters (the tiny twin)" in text and "memory float32 274 MB" in text
    assert "here: float32" in text


def test_memory_limit_refuses_a_load_with_one_message():
    result = synood("models", "load", "--suite", "tiny", "--memory-limit", "1MB")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("synood: error: The tiny suite's image/text encoder (open_clip synood-tiny-ViT")
    for words in ("needs about 273 MB of RAM at float32", "the memory limit allows 1 MB", "Options:",
                  "`--dtype bfloat16`", "`--suite offline`"):
        assert words in line
    assert not result.stdout.strip()  # nothing was loaded


def test_cpu_takes_bfloat16_where_only_that_fits():
    """A limit between the tiny generator's float32 and bfloat16 estimates: `synood models` says bfloat16 and the
    load uses it."""
    found = footprint(SUITES["tiny"].components["generator"])
    limit = f"{(found.estimate('float32') + found.estimate('bfloat16')) // 2}B"
    rows = json.loads(synood("models", "--json", "--suite", "tiny", "--memory-limit", limit).stdout)
    generator = rows["suites"][0]["components"][3]
    assert (generator["dtype"], generator["fits"]) == ("bfloat16", True)
    assert generator["memory_note"] == "float32 would not fit in free RAM, bfloat16 does"
    result = synood("models", "load", "--suite", "tiny", "--role", "generator", "--memory-limit", limit)
    assert result.returncode == 0, result.stderr
    assert "at bfloat16" in result.stdout and "| bfloat16 |" in result.stdout


def test_offload_and_limit_flags_reach_the_config():
    result = synood("config", "--offload", "--memory-limit", "8GB")
    assert result.returncode == 0 and "memory_limit: 8GB" in result.stdout and "offload: true" in result.stdout
    bad = synood("models", "--memory-limit", "lots")
    assert bad.returncode == 2 and "models.memory_limit: 'lots' is not an amount of memory" in bad.stderr
