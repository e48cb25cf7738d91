"""synood.data.wordnet: loading WordNet 3.0 without nltk.download, the candidate corpus, ImageNet synsets."""
import importlib.util
import threading
from pathlib import Path

import nltk
import pytest

from synood.data import wordnet
from synood.data.wordnet import Candidate, WordNetUnavailableError

DEBIAN = Path("/usr/share/wordnet")
needs_debian = pytest.mark.skipif(not (DEBIAN / "index.sense").is_file(),
                                  reason="Debian wordnet-base + wordnet-sense-index not installed")


@pytest.fixture(scope="module")
def wn():
    try:
        return wordnet.wordnet()
    except WordNetUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    """A reader built from the Debian files while nltk's own data paths hold nothing."""
    if not (DEBIAN / "index.sense").is_file():
        pytest.skip("Debian wordnet-base + wordnet-sense-index not installed")
    tmp = tmp_path_factory.mktemp("debian")
    (tmp / "empty").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nltk.data, "path", [str(tmp / "empty")])
        mp.setenv("SYNOOD_HOME", str(tmp / "home"))
        reader, source = wordnet._load([tmp / "absent", DEBIAN], tmp / "home")
        # nltk reads lazily and checks every file against nltk.data.path: use the reader in here
        lexnames = {name: reader.synset(name).lexname() for name in ("dog.n.01", "happy.a.01", "tabby.n.01")}
    return tmp / "home", source, lexnames


def test_debian_files_load_without_nltk_data(debian):
    home, source, lexnames = debian
    assert source.startswith(str(DEBIAN)) and str(home) in source
    assert lexnames == {"dog.n.01": "noun.animal", "happy.a.01": "adj.all", "tabby.n.01": "noun.animal"}


def test_generated_lexnames_is_wordnet_30s(debian):
    lines = (debian[0] / "nltk_data" / "corpora" / "wordnet" / "lexnames").read_text().splitlines()
    assert len(lines) == 45
    for line in ("00\tadj.all\t3", "01\tadj.pert\t3", "02\tadv.all\t4", "03\tnoun.Tops\t1", "05\tnoun.animal\t1",
                 "18\tnoun.person\t1", "28\tnoun.time\t1", "29\tverb.body\t2", "43\tverb.weather\t2",
                 "44\tadj.ppl\t3"):
        assert line in lines
    assert lines.index("18\tnoun.person\t1") == 18


@needs_debian
def test_mirror_is_built_once_and_reused(tmp_path):
    home = tmp_path / "home"
    roots = []
    threads = [threading.Thread(target=lambda: roots.append(wordnet._mirror(DEBIAN, home))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    copy = home / "nltk_data" / "corpora" / "wordnet"
    assert roots == [home / "nltk_data"] * 3
    assert [p.name for p in copy.parent.iterdir()] == ["wordnet"]  # no temporary folder left behind
    inode = (copy / "lexnames").stat().st_ino
    assert wordnet._mirror(DEBIAN, home) == home / "nltk_data"
    assert (copy / "lexnames").stat().st_ino == inode


def test_missing_wordnet_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(WordNetUnavailableError) as info:
        wordnet._load([tmp_path / "absent", tmp_path / "empty"], tmp_path / "home")
    message = str(info.value)
    for text in (str(tmp_path / "nltk_data"), str(tmp_path / "absent"), f"{tmp_path / 'empty'}: missing index.noun",
                 "apt-get install wordnet-base wordnet-sense-index", "make run", "python -m nltk.downloader wordnet"):
        assert text in message
    assert isinstance(info.value, RuntimeError)


@needs_debian
def test_a_dictionary_without_index_sense_is_refused_with_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    src = tmp_path / "dict"
    src.mkdir()
    for name in wordnet._REQUIRED:
        (src / name).symlink_to(DEBIAN / name)
    with pytest.raises(WordNetUnavailableError, match="no index.sense.*wordnet-sense-index"):
        wordnet._load([src], tmp_path / "home")


@pytest.fixture(scope="module")
def corpus(wn):
    return {pos: wordnet.candidates(pos) for pos in ("noun", "adj")}


def test_candidates_follow_the_documented_rule(corpus):
    nouns, adjectives = corpus["noun"], corpus["adj"]
    assert (len(nouns), len(adjectives)) == (67186, 14006)  # the module docstring's chosen rule
    pruned = {"noun.person", "noun.quantity", "noun.group", "adj.pert"}
    assert [sum(c.lexname not in pruned for c in items) for items in (nouns, adjectives)] == [55967, 11047]
    for pos, items in corpus.items():
        words = [c.word for c in items]
        assert words == sorted(set(words))
        assert all(c.pos == pos and "_" not in c.word and c.word == c.word.lower() for c in items)
    assert Candidate("dog", "noun", "noun.animal") in nouns
    assert Candidate("chagall", "noun", "noun.person") in nouns  # first lemma of Chagall/Marc_Chagall
    assert "marc chagall" not in {c.word for c in nouns}
    assert Candidate("happy", "adj", "adj.all") in adjectives
    assert {c.lexname for c in adjectives} == {"adj.all", "adj.pert", "adj.ppl"}
    assert {"ablaze", "atomic"} <= {c.word for c in adjectives}  # a satellite and a pertainym


def test_candidates_are_deterministic_copies(corpus):
    again = wordnet.candidates("noun")
    assert again == corpus["noun"] and again is not corpus["noun"]
    with pytest.raises(ValueError):
        wordnet.candidates("verb")


def _open_clip_classnames():
    # open_clip's metadata module has no imports; loading it alone skips open_clip's (and torch's) import time
    root = Path(importlib.util.find_spec("open_clip").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("_zero_shot_metadata", root / "zero_shot_metadata.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.IMAGENET_CLASSNAMES


def test_imagenet_synsets_are_in_class_index_order(wn):
    synsets = wordnet.imagenet_synsets()
    names = _open_clip_classnames()
    assert len(synsets) == len(set(synsets)) == len(names) == 1000
    for index, name, synset in ((0, "tench", "tench.n.01"), (281, "tabby cat", "tabby.n.01"),
                                (950, "orange", "orange.n.01"), (967, "espresso", "espresso.n.01")):
        assert names[index] == name and synsets[index].name() == synset
    lemmas = [{n.replace("_", " ").lower() for n in s.lemma_names()} for s in synsets]
    assert sum(name.lower() in lemma for name, lemma in zip(names, lemmas)) > 600  # a shift would drop this to ~0
    assert wordnet.gloss(synsets[967]).startswith("strong black coffee")


def test_related(wn):
    s = wordnet.imagenet_synsets()
    tabby, tiger_cat, egyptian_cat, orange, espresso = s[281], s[282], s[285], s[950], s[967]
    lemon, dog, animal = wn.synset("lemon.n.01"), wn.synset("dog.n.01"), wn.synset("animal.n.01")
    assert wordnet.related(tiger_cat, egyptian_cat) and wordnet.related(tiger_cat, egyptian_cat, max_steps=1)
    assert not wordnet.related(tabby, espresso, max_steps=5)
    assert wordnet.related(orange, lemon, max_steps=1)  # both are citrus.n.01's hyponyms
    assert wordnet.related(tabby, tabby, max_steps=0)
    assert wordnet.related(tabby, animal, max_steps=0) and wordnet.related(animal, tabby, max_steps=0)
    assert wordnet.related(wn.synset("chagall.n.01"), wn.synset("person.n.01"), max_steps=0)  # instance hypernym
    assert not wordnet.related(tiger_cat, egyptian_cat, max_steps=0)
    assert not wordnet.related(tabby, dog, max_steps=1) and wordnet.related(tabby, dog)  # via domestic_animal.n.01


def test_source_is_reported(wn):
    assert wordnet.wordnet_source()
