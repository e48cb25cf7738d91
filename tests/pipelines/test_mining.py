"""synood.pipelines.mining: percentile similarity, lowest-k selection and NegMining over a hand-made pool."""
import dataclasses
import hashlib
import random

import numpy as np
import pytest
import torch

from synood.config import NegLabelConfig
from synood.pipelines.mining import lowest, mine, percentile_similarity
from synood.data.wordnet import Candidate

DIM = 12


def _unit(rows):
    return rows / rows.norm(dim=1, keepdim=True)


def test_percentile_similarity_matches_numpy_across_chunks():
    gen = torch.Generator().manual_seed(0)
    cand = _unit(torch.randn(23, DIM, generator=gen))
    ids = _unit(torch.randn(37, DIM, generator=gen))
    expected = np.percentile((cand @ ids.T).double().numpy(), 95, axis=1)  # linear interpolation
    for chunk in (1, 5, 23, 4096):
        got = percentile_similarity(cand, ids, 95.0, chunk=chunk)
        assert got.shape == (23,)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)


def test_percentile_similarity_other_percentile():
    gen = torch.Generator().manual_seed(1)
    cand, ids = _unit(torch.randn(9, DIM, generator=gen)), _unit(torch.randn(10, DIM, generator=gen))
    expected = np.percentile((cand @ ids.T).double().numpy(), 50, axis=1)
    np.testing.assert_allclose(percentile_similarity(cand, ids, 50.0, chunk=4).numpy(), expected, atol=1e-6)


def test_lowest_keeps_int_ratio_ascending_ties_by_earlier_index():
    scores = torch.tensor([0.5, 0.1, 0.3, 0.1, 0.9, 0.3, 0.1, 0.2, 0.7, 0.4])
    keep = lowest(scores, 0.5)  # int(0.5 * 10) = 5
    assert keep.tolist() == [1, 3, 6, 7, 2]
    assert torch.all(scores[keep][1:] >= scores[keep][:-1])
    assert lowest(scores, 0.15).tolist() == [1]  # int(1.5) = 1
    assert lowest(scores, 0.05).tolist() == []  # int(0.5) = 0


# --- mine() over a hand-made pool --------------------------------------------------------------------------

ID_NAMES = ["cat", "dog", "car"]
NOUNS = [f"noun{i:02d}" for i in range(20)] + ["far noun", "cat"]
ADJS = [f"adj{i:02d}" for i in range(13)] + ["far adj"]


def _hash_row(text):
    """Non-negative hash features in dims 0..10: positive similarity to every ID feature."""
    digest = hashlib.sha256(text.encode()).digest()
    return torch.tensor([(b + 1) / 256.0 for b in digest[:DIM - 1]] + [0.0])


RAW_NORM = 7.5  # the fake's raw embeddings have this norm, like CLIP's, which are far from 1


def _basis(index):
    row = torch.zeros(DIM)
    row[index] = 1.0
    return row


class FakeTextFeatures:
    """Deterministic unit-norm features from a hash of each prompt, except: the ID prompts are the basis
    vectors e0..e2, the noun "cat" gets e0 (equal to the ID feature of "cat"), and prompts containing
    "far" get e11 (orthogonal to every ID feature). Records every text list it is asked for."""

    def __init__(self, config):
        self.config = config
        self.seen = []

    def __call__(self, texts, progress=None, normalize=True):
        self.seen.append(list(texts))
        special = {self.config.id_template.format(n): i for i, n in enumerate(ID_NAMES)}
        special[self.config.noun_template.format("cat")] = 0
        rows = [_basis(special[t]) if t in special else _basis(DIM - 1) if "far" in t else _hash_row(t)
                for t in texts]
        return _unit(torch.stack(rows)) * (1 if normalize else RAW_NORM)


def _pool(nouns=NOUNS, adjs=ADJS, lexname=lambda word, pos: f"{pos}.all"):
    return {"noun": [Candidate(w, "noun", lexname(w, "noun")) for w in nouns],
            "adj": [Candidate(w, "adj", lexname(w, "adj")) for w in adjs]}


def _mine(config=NegLabelConfig(), pool=None):
    fake = FakeTextFeatures(config)
    labels, features = mine(fake, ID_NAMES, config, pool=pool or _pool())
    return labels, features, fake


def test_mine_counts_per_pos_and_nouns_first():
    labels, features, _ = _mine()
    pos = [label.pos for label in labels]
    n_noun, n_adj = int(0.15 * len(NOUNS)), int(0.15 * len(ADJS))  # 3 and 2
    assert pos == ["noun"] * n_noun + ["adj"] * n_adj
    assert features.shape == (n_noun + n_adj, DIM)


def test_mine_each_pos_is_most_distant_first():
    labels, _, _ = _mine()
    for pos in ("noun", "adj"):
        values = [label.percentile for label in labels if label.pos == pos]
        assert values == sorted(values)


def test_mine_uses_the_config_templates():
    config = NegLabelConfig(noun_template="N[{}]", adjective_template="A[{}]", id_template="the nice {}")
    _, _, fake = _mine(config)
    id_texts, noun_texts, adj_texts = fake.seen
    assert id_texts == [f"the nice {n}" for n in ID_NAMES]
    assert noun_texts == [f"N[{w}]" for w in sorted(NOUNS)]  # encoded in word order
    assert adj_texts == [f"A[{w}]" for w in sorted(ADJS)]


def test_mine_with_given_id_features_skips_encoding_them_and_agrees():
    labels, features, _ = _mine()
    config = NegLabelConfig()
    fake = FakeTextFeatures(config)
    given = _unit(torch.stack([_basis(i) for i in range(len(ID_NAMES))]))
    again, again_features = mine(fake, ID_NAMES, config, pool=_pool(), id_features=given)
    assert again == labels and torch.equal(again_features, features)
    assert [len(texts) for texts in fake.seen] == [len(NOUNS), len(ADJS)]  # no ID prompt list encoded


def test_mine_keeps_far_candidate_and_drops_one_equal_to_an_id_feature():
    labels, _, _ = _mine()
    words = [label.word for label in labels]
    assert words[0] == "far noun" and "far adj" in words
    assert "cat" not in words
    far = next(label for label in labels if label.word == "far noun")
    assert far.percentile == pytest.approx(0.0, abs=1e-6)  # orthogonal to every ID feature


def test_mine_returns_raw_rows_of_kept_candidates_ranked_by_cosine():
    config = NegLabelConfig()
    labels, features, _ = _mine(config)
    expected = FakeTextFeatures(config)([
        (config.noun_template if label.pos == "noun" else config.adjective_template).format(label.word)
        for label in labels], normalize=False)
    assert torch.equal(features, expected)  # raw: stage 3 learns the raw text embeddings
    assert features.norm(dim=1).tolist() == pytest.approx([RAW_NORM] * len(labels))
    ids = FakeTextFeatures(config)([config.id_template.format(n) for n in ID_NAMES])
    recomputed = percentile_similarity(features / RAW_NORM, ids)
    assert [label.percentile for label in labels] == pytest.approx(recomputed.tolist(), abs=1e-6)


def test_mine_is_deterministic_and_independent_of_pool_order():
    first, first_features, _ = _mine()
    again, again_features, _ = _mine()
    rng = random.Random(3)
    nouns, adjs = NOUNS[:], ADJS[:]
    rng.shuffle(nouns)
    rng.shuffle(adjs)
    shuffled, shuffled_features, _ = _mine(pool=_pool(nouns, adjs))
    assert first == again == shuffled
    assert torch.equal(first_features, again_features) and torch.equal(first_features, shuffled_features)


def test_mine_ties_break_by_word_not_pool_order():
    # all four candidates get the identical far feature: ties are decided alphabetically
    pool = _pool(nouns=["far d", "far b", "far c", "far a"] + NOUNS[:16], adjs=ADJS)
    labels, _, _ = _mine(pool=pool)
    assert [label.word for label in labels if label.pos == "noun"] == ["far a", "far b", "far c"]


def test_mine_prune_csp_drops_pruned_lexnames():
    pruned = {"noun00": "noun.person", "noun01": "noun.quantity", "noun02": "noun.group", "adj00": "adj.pert",
              "far noun": "noun.person", "far adj": "adj.pert"}
    pool = _pool(lexname=lambda word, pos: pruned.get(word, "noun.artifact" if pos == "noun" else "adj.all"))
    kept_all, _, _ = _mine(pool=pool)
    assert "far noun" in [label.word for label in kept_all]
    config = dataclasses.replace(NegLabelConfig(), prune_csp=True)
    labels, _, fake = _mine(config, pool=pool)
    _, noun_texts, adj_texts = fake.seen
    assert len(noun_texts) == len(NOUNS) - 4 and len(adj_texts) == len(ADJS) - 2
    assert not {label.lexname for label in labels} & set(pruned.values())
    assert not {label.word for label in labels} & set(pruned)
    assert [label.pos for label in labels].count("noun") == int(0.15 * (len(NOUNS) - 4))
