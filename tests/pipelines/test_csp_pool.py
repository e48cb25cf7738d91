"""synood.pipelines.mining's CSP pool (NeurIPS 2024) over a small given pool and a hash-based fake text encoder:
template ensembling, the seeded superclass draw, the near-ID rule, the per-part-of-speech keep ratio, the cache,
and `synood evaluate --scores csp` through the CLI entry point."""
import dataclasses
import functools
import hashlib
import json
import os
import random

import pytest
import torch
import torch.nn.functional as F

from synood.config import CSPSettings, NegLabelConfig
from synood.data import photos
from synood.data.wordnet import Candidate
from synood.pipelines import mining

SETTINGS = CSPSettings()
DIM = 48
ID_NAMES = [f"class{i:02d}" for i in range(40)]  # class i has feature e_i under every template
PRUNED = {"noun.person", "noun.quantity", "noun.group", "adj.pert"}
NOUNS = [f"noun{i:02d}" for i in range(26)] + ["far noun", "twin"]
ADJS = [f"adj{i:02d}" for i in range(19)] + ["far"]
POOL = {"noun": [Candidate(w, "noun", "noun.artifact") for w in NOUNS]
        + [Candidate("pruned noun", "noun", "noun.person"), Candidate("pruned group", "noun", "noun.group")],
        "adj": [Candidate(w, "adj", "adj.all") for w in ADJS] + [Candidate("pruned adj", "adj", "adj.pert")]}


def _basis(index: int) -> torch.Tensor:
    row = torch.zeros(DIM)
    row[index] = 1.0
    return row


class FakeTextFeatures:
    """Raw features from a hash of each prompt (non-negative, so positively similar to every ID label, with a norm
    between 2 and 10 that varies by prompt), except: every noun-template prompt of ID class i and of the noun "twin"
    is along e_i (twin: e_0, the same as class00) and prompts containing "far" are along e_47, orthogonal to every
    ID label. Records every list of texts it encodes."""

    def __init__(self):
        self.seen: list[list[str]] = []
        self.special = {t.format(name): _basis(i) for t in SETTINGS.noun_templates for i, name in enumerate(ID_NAMES)}
        self.special.update({t.format("twin"): _basis(0) for t in SETTINGS.noun_templates})

    def raw(self, text: str) -> torch.Tensor:
        digest = hashlib.sha256(text.encode()).digest()
        norm = 2 + 8 * digest[-1] / 255
        if text in self.special:
            return self.special[text] * norm
        if "far" in text:
            return _basis(DIM - 1) * norm
        return F.normalize(torch.tensor([(b + 1) / 256 for b in (digest * 2)[:DIM - 1]] + [0.0]), dim=0) * norm

    def __call__(self, texts, progress=None, normalize=True):
        self.seen.append(list(texts))
        rows = torch.stack([self.raw(text) for text in texts])
        return F.normalize(rows, dim=-1) if normalize else rows


def _mine(config=NegLabelConfig(), pool=POOL, settings=SETTINGS):
    fake = FakeTextFeatures()
    labels, features = mining.mine_csp(fake, ID_NAMES, config, pool=pool, settings=settings)
    return labels, features, fake


def _kept(pos: str) -> list[Candidate]:
    return sorted((c for c in POOL[pos] if c.lexname not in PRUNED), key=lambda c: c.word)


def test_ensembled_averages_the_raw_features_before_normalising():
    fake = FakeTextFeatures()
    words, templates = ["noun01", "adj02 thing", "class03"], ("{}", "a photo of {}", "the {}")
    expected = torch.stack([fake([t.format(w) for w in words], normalize=False) for t in templates]).mean(dim=0)
    got = mining.ensembled(fake, words, templates, None, "stage")
    torch.testing.assert_close(got, expected)
    unit_mean = torch.stack([fake([t.format(w) for w in words]) for t in templates]).mean(dim=0)
    assert not torch.allclose(F.normalize(got, dim=-1), F.normalize(unit_mean, dim=-1))  # the norms weigh


def test_id_features_are_the_unit_mean_over_the_eight_noun_templates():
    fake = FakeTextFeatures()
    got = mining.csp_id_features(fake, ID_NAMES[:3])
    assert fake.seen == [[t.format(n) for n in ID_NAMES[:3]] for t in SETTINGS.noun_templates]
    assert len(SETTINGS.noun_templates) == 8
    torch.testing.assert_close(got, torch.stack([_basis(i) for i in range(3)]))


def test_superclass_draw_is_pythons_seeded_choice_in_word_order_and_reproducible():
    words = [c.word for c in _kept("adj")]
    random.seed(0)  # the authors: random.seed(seed), then one random.choice(csp_templates) per adjective
    expected = [random.choice(SETTINGS.superclass_templates).format(w) for w in words]
    assert mining.superclassed(words) == expected == mining.superclassed(words)
    assert mining.superclassed(words, dataclasses.replace(SETTINGS, seed=1)) != expected
    assert len(SETTINGS.superclass_templates) == 14


def test_nouns_use_every_noun_template_and_adjectives_their_phrase_in_every_adjective_template():
    labels, _, fake = _mine()
    nouns = [c.word for c in _kept("noun")]
    phrases = mining.superclassed([c.word for c in _kept("adj")])
    templates = SETTINGS.noun_templates
    assert fake.seen[:8] == [[t.format(n) for n in ID_NAMES] for t in templates]
    assert fake.seen[8:16] == [[t.format(w) for w in nouns] for t in templates]
    assert fake.seen[16:] == [[t.format(p) for p in phrases] for t in SETTINGS.adjective_templates]
    assert {label.word for label in labels if label.pos == "adj"} <= set(phrases)


def test_each_part_of_speech_keeps_its_lowest_fraction_after_pruning():
    labels, features, _ = _mine()
    n_noun, n_adj = int(0.15 * len(_kept("noun"))), int(0.15 * len(_kept("adj")))  # 28 -> 4, 20 -> 3
    assert [label.pos for label in labels] == ["noun"] * n_noun + ["adj"] * n_adj
    assert features.shape == (n_noun + n_adj, DIM)
    assert not {label.lexname for label in labels} & PRUNED
    for pos in ("noun", "adj"):
        values = [label.percentile for label in labels if label.pos == pos]
        assert values == sorted(values)
    more, _, _ = _mine(NegLabelConfig(keep_ratio=0.5))
    assert [label.pos for label in more].count("noun") == 14


def test_a_candidate_nearly_naming_an_id_class_ranks_last():
    fake, unit = FakeTextFeatures(), lambda words: F.normalize(mining.ensembled(
        fake, words, SETTINGS.noun_templates, None, "stage"), dim=-1)
    ids, twin = mining.csp_id_features(fake, ID_NAMES), unit(["twin"])
    # twin equals class00 (cosine 1) and is orthogonal to the 39 others: its 95th percentile is 0
    assert mining.percentile_similarity(twin, ids).item() == pytest.approx(0.0, abs=1e-6)
    assert mining.percentile_similarity(twin, ids, near_id=0.95).item() == 1.0
    labels, _, _ = _mine(NegLabelConfig(keep_ratio=0.5))
    nouns = [label.word for label in labels if label.pos == "noun"]
    assert nouns[0] == "far noun" and "twin" not in nouns
    without, _, _ = _mine(NegLabelConfig(keep_ratio=0.5), settings=dataclasses.replace(SETTINGS, near_id=1.5))
    assert "twin" in [label.word for label in without][:2]  # tied with "far noun" at 0 when the rule never fires


def test_features_are_the_raw_template_means_of_the_kept_candidates():
    labels, features, fake = _mine()
    for label, row in zip(labels, features):
        templates = SETTINGS.noun_templates if label.pos == "noun" else SETTINGS.adjective_templates
        torch.testing.assert_close(row, mining.ensembled(fake, [label.word], templates, None, "stage")[0])


def test_the_pool_order_does_not_matter():
    first, first_features, _ = _mine()
    shuffled = {pos: random.Random(3).sample(POOL[pos], len(POOL[pos])) for pos in POOL}
    again, again_features, _ = _mine(pool=shuffled)
    assert first == again and torch.equal(first_features, again_features)


def test_the_csp_pool_is_cached_beside_and_apart_from_neglabels(tmp_path):
    assert mining.POOLS["csp"] == mining.Pool(mining.csp_id_label_features, mining.csp_negatives)
    fake = FakeTextFeatures()
    labels, features = mining.csp_negatives("fake-encoder", fake, ID_NAMES, pool=POOL, root=tmp_path)
    encoded = len(fake.seen)
    again, again_features = mining.csp_negatives("fake-encoder", fake, ID_NAMES, pool=POOL, root=tmp_path)
    assert len(fake.seen) == encoded  # read from the cache: nothing encoded
    assert again == labels and torch.equal(again_features, features)
    neglabel, _ = mining.negatives("fake-encoder", fake, ID_NAMES, pool=POOL, root=tmp_path)
    assert neglabel != labels and len(list((tmp_path / "negative-labels").glob("*.safetensors"))) == 2
    other, _ = mining.csp_negatives("fake-encoder", fake, ID_NAMES, NegLabelConfig(keep_ratio=0.5), pool=POOL,
                                    root=tmp_path)
    assert len(other) > len(labels)  # the keep ratio is part of the key


def test_synood_evaluate_scores_csp_through_the_cli(monkeypatch, tmp_path, capsys):
    from synood.cli import main

    small = {"noun": [Candidate(w, "noun", "noun.artifact") for w in ("rock", "cloud", "ladder", "spoon", "river",
                                                                        "tower", "wheel")],
             "adj": [Candidate(w, "adj", "adj.all") for w in ("blue", "rough", "tall", "quiet", "wet", "dry", "old")]}
    monkeypatch.setitem(mining.POOLS, "csp", mining.Pool(mining.csp_id_label_features,
                                                         functools.partial(mining.csp_negatives, pool=small)))
    for name, chosen in (("id", photos.photos("id")[:3]), ("ood", [photos.by_name(n) for n in ("brick", "grass")])):
        (tmp_path / name).mkdir()
        for photo in chosen:
            os.symlink(photo.path, tmp_path / name / f"{photo.name}{photo.path.suffix}")
    args = ["evaluate", "--suite", "tiny", "--id", str(tmp_path / "id"), "--ood", f"textures={tmp_path / 'ood'}"]
    assert main([*args, "--scores", "csp,neglabel", "--json", "--set", "neglabel.ngroups=2"]) == 0  # 2 CSP negatives
    report = json.loads(capsys.readouterr().out)
    assert list(report["methods"]) == ["csp", "neglabel"]
    assert 0 <= report["methods"]["csp"]["average"]["mos"]["auroc"] <= 100
    assert report["methods"]["csp"] != report["methods"]["neglabel"]
