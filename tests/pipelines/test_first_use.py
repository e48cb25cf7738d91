"""First use in seconds: the on-disk cache of mined negative labels, its key, named progress stages, and the
WordNet files read without nltk's reader (issue 13)."""
import dataclasses
import hashlib
import json
import zipfile

import pytest
import torch

from synood.pipelines import mining
from synood.data import wordnet
from synood.config import NegLabelConfig
from synood.pipelines.detect import Detector
from synood.data.wordnet import Candidate, WordNetUnavailableError

DIM = 8
ID_NAMES = ["cat", "dog", "car"]
POOL = {"noun": [Candidate(f"noun{i:02d}", "noun", "noun.artifact") for i in range(20)],
        "adj": [Candidate(f"adj{i:02d}", "adj", "adj.all") for i in range(14)]}


class CountingTextFeatures:
    """Deterministic unit-norm features from a hash of each text; records every list of texts it encodes."""

    def __init__(self):
        self.seen = []

    def __call__(self, texts, progress=None, normalize=True):
        self.seen.append(list(texts))
        rows = torch.tensor([list(hashlib.sha256(t.encode()).digest()[:DIM]) for t in texts], dtype=torch.float32)
        if progress:
            progress(len(texts), len(texts))
        return torch.nn.functional.normalize(rows - 127.5, dim=-1)


class FakeEncoder:
    """The text side of an ImageTextEncoder, enough to build a Detector."""

    identity = "fake-encoder:1"

    def __init__(self):
        self.text_features = CountingTextFeatures()


def _negatives(root, text_features=None, config=NegLabelConfig(), identity="model-a", progress=None, pool=POOL):
    return mining.negatives(identity, text_features or CountingTextFeatures(), ID_NAMES, config, progress,
                            pool=pool, root=root)


def _files(root):
    return sorted(p.name for p in (root / "negative-labels").iterdir())


def test_second_build_reads_the_cache_without_encoding(tmp_path):
    first_features = CountingTextFeatures()
    labels, features = _negatives(tmp_path, first_features)
    assert len(first_features.seen) == 3  # ID prompts, nouns, adjectives
    expected_labels, expected_features = mining.mine(CountingTextFeatures(), ID_NAMES, pool=POOL)
    assert labels == expected_labels and torch.equal(features, expected_features)
    again_features = CountingTextFeatures()
    again, again_tensor = _negatives(tmp_path, again_features)
    assert again_features.seen == []
    assert again == labels and torch.equal(again_tensor, features)
    key = mining.cache_key("model-a", ID_NAMES, NegLabelConfig(), mining.pool_digest(POOL))
    assert _files(tmp_path) == [f"{key}.json", f"{key}.safetensors"]


def test_detector_built_twice_encodes_only_its_id_prompts_the_second_time(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNOOD_HOME", str(tmp_path))
    monkeypatch.setattr(mining, "candidates", lambda pos: list(POOL[pos]))  # a small pool in WordNet's place
    monkeypatch.setattr(mining, "fingerprint", lambda: "test-wordnet")
    first = FakeEncoder()
    built = Detector(first, classifier=None, id_names=ID_NAMES)
    assert [len(texts) for texts in first.text_features.seen] == [3, 20, 14]
    second = FakeEncoder()
    stages = []
    again = Detector(second, classifier=None, id_names=ID_NAMES, progress=lambda *step: stages.append(step))
    assert [len(texts) for texts in second.text_features.seen] == [3]  # the ID prompts: its own attribute
    assert again.negatives == built.negatives and torch.equal(again.negative_features, built.negative_features)
    assert torch.equal(again.id_features, built.id_features)
    assert stages == [(mining.ENCODING_ID, 3, 3), (mining.LOADING_CACHED, 0, 1), (mining.LOADING_CACHED, 1, 1)]


def test_a_miss_reports_every_stage_by_name_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(mining, "candidates", lambda pos: list(POOL[pos]))
    monkeypatch.setattr(mining, "fingerprint", lambda: "test-wordnet")
    stages = []
    mining.negatives("model-a", CountingTextFeatures(), ID_NAMES, NegLabelConfig(), lambda *step: stages.append(step),
                     root=tmp_path)
    names = list(dict.fromkeys(stage for stage, _, _ in stages))
    assert names == [mining.ENCODING_ID, mining.READING_WORDNET, "Encoding WordNet nouns",
                     mining.ranking_stage("noun"), "Encoding WordNet adjectives", mining.ranking_stage("adj"),
                     mining.SAVING]
    assert ("Encoding WordNet nouns", 20, 20) in stages and ("Encoding WordNet adjectives", 14, 14) in stages
    assert all(done <= total for _, done, total in stages)


@pytest.mark.parametrize("damage", ["truncated tensors", "garbage tensors", "empty labels", "edited labels",
                                    "labels of another list", "missing labels", "missing tensors"])
def test_a_damaged_or_mismatched_cache_is_rebuilt(tmp_path, damage):
    labels, features = _negatives(tmp_path)
    key = mining.cache_key("model-a", ID_NAMES, NegLabelConfig(), mining.pool_digest(POOL))
    tensors, text = tmp_path / "negative-labels" / f"{key}.safetensors", tmp_path / "negative-labels" / f"{key}.json"
    data = tensors.read_bytes()
    if damage == "truncated tensors":
        tensors.write_bytes(data[:len(data) // 2])
    elif damage == "garbage tensors":
        tensors.write_bytes(b"\xff" * 64)
    elif damage == "empty labels":
        text.write_text("")
    elif damage == "edited labels":
        rows = json.loads(text.read_text())
        rows[0][0] = "another word"
        text.write_text(json.dumps(rows))
    elif damage == "labels of another list":
        other = dataclasses.replace(NegLabelConfig(), keep_ratio=0.5)
        _negatives(tmp_path, config=other)
        other_key = mining.cache_key("model-a", ID_NAMES, other, mining.pool_digest(POOL))
        text.write_text((tmp_path / "negative-labels" / f"{other_key}.json").read_text())
    else:
        (tensors if damage == "missing tensors" else text).unlink()
    assert mining.read_negatives(tensors.with_suffix("")) is None
    encode = CountingTextFeatures()
    rebuilt, rebuilt_features = _negatives(tmp_path, encode)
    assert len(encode.seen) == 3
    assert rebuilt == labels and torch.equal(rebuilt_features, features)
    cached_labels, cached_features = mining.read_negatives(tensors.with_suffix(""))
    assert cached_labels == labels and torch.equal(cached_features, features)


def test_cache_key_changes_with_each_dependency_and_nothing_else():
    config = NegLabelConfig()
    base = mining.cache_key("model-a", ID_NAMES, config, "wordnet-a")
    changed = {
        "encoder identity": mining.cache_key("model-b", ID_NAMES, config, "wordnet-a"),
        "ID names": mining.cache_key("model-a", ID_NAMES + ["owl"], config, "wordnet-a"),
        "ID name order": mining.cache_key("model-a", ID_NAMES[::-1], config, "wordnet-a"),
        "candidate source": mining.cache_key("model-a", ID_NAMES, config, "wordnet-b"),
        "id_template": mining.cache_key("model-a", ID_NAMES, dataclasses.replace(config, id_template="a {}"),
                                        "wordnet-a"),
    }
    new_values = {"noun_template": "a {} thing", "adjective_template": "a {} photo", "percentile": 90.0,
                  "keep_ratio": 0.2, "prune_csp": True}
    assert set(new_values) == set(mining.MINING_FIELDS)
    for name, value in new_values.items():
        changed[name] = mining.cache_key("model-a", ID_NAMES, dataclasses.replace(config, **{name: value}),
                                         "wordnet-a")
    assert base not in changed.values() and len(set(changed.values())) == len(changed)
    for name, value in {"ngroups": 10, "temperature": 1.0, "group_seed": 3}.items():  # scoring, not mining
        assert mining.cache_key("model-a", ID_NAMES, dataclasses.replace(config, **{name: value}), "wordnet-a") == base


def test_pool_digest_follows_the_pool_not_its_order():
    reordered = {pos: items[::-1] for pos, items in POOL.items()}
    assert mining.pool_digest(reordered) == mining.pool_digest(POOL)
    renamed = {"noun": POOL["noun"][:-1] + [Candidate("other", "noun", "noun.artifact")], "adj": POOL["adj"]}
    relabelled = {"noun": POOL["noun"][:-1] + [dataclasses.replace(POOL["noun"][-1], lexname="noun.person")],
                  "adj": POOL["adj"]}
    assert len({mining.pool_digest(p) for p in (POOL, renamed, relabelled)}) == 3


# --- WordNet read without nltk's reader ------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader():
    try:
        return wordnet.wordnet()
    except WordNetUnavailableError as exc:
        pytest.skip(str(exc))


def test_candidates_and_glosses_parsed_from_the_files_equal_nltks(reader):
    for pos, nltk_pos in (("noun", "n"), ("adj", "a")):
        lexname_of = {}
        for synset in reader.all_synsets(nltk_pos):
            lexname_of.setdefault(synset.lemma_names()[0].replace("_", " ").lower(), synset.lexname())
        assert wordnet.candidates(pos) == [Candidate(word, pos, lexname_of[word]) for word in sorted(lexname_of)]
    assert wordnet.imagenet_glosses() == [synset.definition() for synset in wordnet.imagenet_synsets()]


def _copy(dictionary, folder):
    folder.mkdir()
    for name in ("data.noun", "data.adj"):
        (folder / name).write_bytes(dictionary.read(name))
    return wordnet.Dictionary(folder)


def test_fingerprint_follows_the_data_files_and_a_zip_reads_as_a_folder(reader, tmp_path):
    found = wordnet.dictionary()
    copy = _copy(found, tmp_path / "copy")
    assert wordnet._fingerprint(copy) == wordnet.fingerprint()
    archive = tmp_path / "wordnet.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name in ("data.noun", "data.adj"):
            handle.writestr(f"wordnet/{name}", found.read(name))
    zipped = wordnet.Dictionary(archive, "wordnet/")
    assert wordnet._candidates("adj", zipped) == wordnet._candidates("adj", copy)
    edited = _copy(found, tmp_path / "edited")
    (edited.path / "data.adj").write_bytes(found.read("data.adj") + b"00000000 00 a 01 invented 0 000 | new\n")
    assert wordnet._fingerprint(edited) != wordnet.fingerprint()
    assert Candidate("invented", "adj", "adj.all") in wordnet._candidates("adj", edited)


def test_a_dictionary_that_is_not_wordnet_30_is_refused(reader, tmp_path):
    other = _copy(wordnet.dictionary(), tmp_path / "other")
    text = (other.path / "data.noun").read_text().replace("WordNet 3.0 Copyright", "WordNet 3.1 Copyright", 1)
    (other.path / "data.noun").write_text(text)
    with pytest.raises(WordNetUnavailableError, match="not WordNet 3.0"):
        wordnet._candidates("noun", other)


class FakeSuite:
    """A loaded suite's `get` (the holder keys its detector by suite and NegLabel config)."""

    def __init__(self):
        self.components = {"encoder": FakeEncoder(), "classifier": None}

    def get(self, role, progress=None):
        return self.components[role]


def test_the_apps_progress_names_every_stage_then_the_cached_list_after_a_restart(tmp_path, monkeypatch):
    from synood.config import Config
    from ui.detector import LOADING_LIBRARIES, DetectorHolder

    monkeypatch.setenv("SYNOOD_HOME", str(tmp_path))
    monkeypatch.setattr(mining, "candidates", lambda pos: list(POOL[pos]))
    monkeypatch.setattr(mining, "fingerprint", lambda: "test-wordnet")

    def shown(holder):
        seen = []
        holder.get(lambda fraction, desc=None: seen.append((round(fraction, 3), desc)))
        return seen

    first = shown(DetectorHolder(FakeSuite(), Config()))
    assert first[0] == (0.0, LOADING_LIBRARIES)
    descriptions = [desc for _, desc in first]
    for desc in ("Encoding ID label prompts: 1,000 of 1,000", mining.READING_WORDNET, "Encoding WordNet nouns: 20 of 20",
                 mining.ranking_stage("noun"), "Encoding WordNet adjectives: 14 of 14", mining.SAVING):
        assert desc in descriptions
    assert all(0.0 <= fraction <= 1.0 for fraction, _ in first)
    restarted = shown(DetectorHolder(FakeSuite(), Config()))  # a new app: a new holder, the caches on disk
    assert [desc for _, desc in restarted] == [LOADING_LIBRARIES, "Encoding ID label prompts: 1,000 of 1,000",
                                               mining.LOADING_CACHED, mining.LOADING_CACHED]
