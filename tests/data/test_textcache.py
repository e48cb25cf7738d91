"""synood.data.textcache and synood.data.storage: on-disk text-feature cache, batching order, atomic writes."""
import hashlib

import pytest
import torch
from safetensors.torch import load_file

from synood.data.storage import save_tensors
from synood.data.textcache import cache_key, cached_text_features, encode_in_batches

DIM = 16


def _features(text):
    """Deterministic unit-norm row that encodes the text: one-hot of len(text) plus hash features."""
    row = torch.zeros(DIM)
    row[len(text) % 8] = 1.0
    digest = hashlib.sha256(text.encode()).digest()
    row[8:] = torch.tensor([b / 255.0 for b in digest[:DIM - 8]])
    return row / row.norm()


class CountingEncode:
    def __init__(self):
        self.calls = []

    def __call__(self, batch):
        self.calls.append(list(batch))
        return torch.stack([_features(t) for t in batch])

    @property
    def texts_seen(self):
        return sum(len(b) for b in self.calls)


TEXTS = ["a cat", "the nice dog", "x", "a very long prompt about a fox", "owl", "the nice tree"]


def _cache_files(root):
    return sorted((root / "text-features").glob("*.safetensors"))


def test_miss_then_hit_skips_encode_and_returns_identical_features(tmp_path):
    encode = CountingEncode()
    first = cached_text_features("model-a", TEXTS, encode, batch_size=4, root=tmp_path)
    assert encode.texts_seen == len(TEXTS)
    encode.calls.clear()
    second = cached_text_features("model-a", TEXTS, encode, batch_size=4, root=tmp_path)
    assert encode.calls == []
    assert torch.equal(first, second)
    assert first.dtype == torch.float32 and first.shape == (len(TEXTS), DIM)
    files = _cache_files(tmp_path)
    assert [f.name for f in files] == [f"{cache_key('model-a', TEXTS)}.safetensors"]
    assert torch.equal(load_file(str(files[0]))["features"], first)


@pytest.mark.parametrize("identity, texts", [
    ("model-b", TEXTS),  # different identity
    ("model-a", ["a cow"] + TEXTS[1:]),  # one text changed
    ("model-a", TEXTS[::-1]),  # order changed
    ("model-a", TEXTS + ["one more"]),  # one text added
])
def test_any_change_is_a_cache_miss(tmp_path, identity, texts):
    cached_text_features("model-a", TEXTS, CountingEncode(), root=tmp_path)
    encode = CountingEncode()
    features = cached_text_features(identity, texts, encode, root=tmp_path)
    assert encode.texts_seen == len(texts)
    assert torch.equal(features, torch.stack([_features(t) for t in texts]))
    assert len(_cache_files(tmp_path)) == 2


def test_cache_key_separates_text_boundaries():
    assert cache_key("m", ["ab", "c"]) != cache_key("m", ["a", "bc"])
    assert cache_key("m", ["a"]) != cache_key("m", ["a", ""])


def test_encode_in_batches_keeps_original_order_and_reports_final_progress():
    texts = [f"{'w' * (i % 5)}{i}" for i in range(11)]
    encode = CountingEncode()
    calls = []
    out = encode_in_batches(encode, texts, batch_size=3, progress=lambda done, total: calls.append((done, total)))
    assert torch.equal(out, torch.stack([_features(t) for t in texts]))
    # batches go by length: every batch is sorted by length, and lengths never decrease across batches
    lengths = [len(t) for batch in encode.calls for t in batch]
    assert lengths == sorted(lengths) and [len(b) for b in encode.calls] == [3, 3, 3, 2]
    assert calls == [(3, 11), (6, 11), (9, 11), (11, 11)]


def test_hit_reports_final_progress(tmp_path):
    cached_text_features("m", TEXTS, CountingEncode(), root=tmp_path)
    calls = []
    cached_text_features("m", TEXTS, CountingEncode(), root=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(len(TEXTS), len(TEXTS))]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_cache_file_is_rebuilt(tmp_path, damage):
    expected = cached_text_features("m", TEXTS, CountingEncode(), root=tmp_path)
    (path,) = _cache_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"\xff" * 64 + b"not a tensor", "empty": b""}[damage])
    encode = CountingEncode()
    rebuilt = cached_text_features("m", TEXTS, encode, root=tmp_path)
    assert encode.texts_seen == len(TEXTS)
    assert torch.equal(rebuilt, expected)
    assert torch.equal(load_file(str(path))["features"], expected)


def test_cache_file_with_wrong_row_count_is_rebuilt(tmp_path):
    expected = cached_text_features("m", TEXTS, CountingEncode(), root=tmp_path)
    (path,) = _cache_files(tmp_path)
    save_tensors(path, {"features": expected[:-1].contiguous()})
    encode = CountingEncode()
    assert torch.equal(cached_text_features("m", TEXTS, encode, root=tmp_path), expected)
    assert encode.texts_seen == len(TEXTS)
    assert load_file(str(path))["features"].shape == (len(TEXTS), DIM)


def test_save_tensors_failure_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "t.safetensors"
    old = {"x": torch.arange(4.0)}
    save_tensors(path, old)
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial bytes")
        raise RuntimeError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save_file)  # save_tensors imports it per call
    with pytest.raises(RuntimeError, match="disk full"):
        save_tensors(path, {"x": torch.zeros(100)})
    assert path.read_bytes() == before
    assert torch.equal(load_file(str(path))["x"], old["x"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.safetensors"]


def test_save_tensors_writes_metadata_and_no_temp(tmp_path):
    path = tmp_path / "a" / "b.safetensors"
    save_tensors(path, {"x": torch.ones(2, 3)}, {"identity": "m"})
    from safetensors import safe_open
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"identity": "m"}
    assert [p.name for p in path.parent.iterdir()] == ["b.safetensors"]


def test_empty_text_list_raises(tmp_path):
    encode = CountingEncode()
    with pytest.raises(ValueError):
        cached_text_features("m", [], encode, root=tmp_path)
    assert encode.calls == []


def test_default_root_is_synood_home(cache_root):
    encode = CountingEncode()
    cached_text_features("default-root-test", ["hello"], encode)
    assert (cache_root / "synood" / "text-features" / f"{cache_key('default-root-test', ['hello'])}.safetensors").is_file()
