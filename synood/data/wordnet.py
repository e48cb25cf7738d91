"""WordNet 3.0 through nltk, without nltk.download: negative-label candidates and ImageNet synsets.

Sources, in order: nltk's own data (`corpora/wordnet` on nltk.data.path), then a system WordNet
dictionary (Debian `wordnet-base` + `wordnet-sense-index` in /usr/share/wordnet, and the other
places in `_system_dirs`). nltk 3.10 reads only files inside its data roots (a symlink out of one is
refused, and so is a hard link), needs the `lexnames` file Debian lacks, and needs `index.sense`
(its constructor maps sense keys even for 3.0). So a system dictionary is copied once (~35 MB) into
`<SYNOOD_HOME>/nltk_data/corpora/wordnet` with a generated `lexnames`, and that root is appended
to nltk.data.path; from then on `nltk.corpus.wordnet` works in this process too.

Candidate corpus for NegMining (METHOD.md section 1: "~70k unique strings"), measured on WordNet 3.0:

    rule                                      nouns   adjectives      sum
    every lemma name, case-sensitive         119,034     21,538    140,572
    every lemma name, case-insensitive       117,798     21,479    139,277
    first lemma per synset, case-sensitive    67,893     14,045     81,938
    first lemma per synset, lowercased        67,186     14,006     81,192   <- chosen

The chosen rule is the closest to ~70k and is the reference's: its noun.shape list (331 words) matches
the lowercased first lemmas of our noun.shape synsets (328 words) except for 4 + 1 words, likely a
WordNet version difference (our "curate cycloid" is its "curtate cycloid", ...). Its released 8,578 + 1,921
negatives at 15 % imply ~57.2k nouns and ~12.8k adjectives; the copy of its list folder we could
inspect has no noun.animal or noun.food file (without them: 58,514 nouns). With the optional pruning
(noun.person, noun.quantity, noun.group, adj.pert) the chosen rule keeps 55,967 + 11,047.
Adjectives include satellites. Words are lowercased (CLIP's tokenizer lowercases anyway); a word keeps
the lexname of its first synset in data-file order.

The candidates and the ImageNet glosses are parsed straight from the dictionary's data files (`dictionary()`,
well under a second), as nltk's reader parses them: nltk's import and reader take 5 to 20 s on 2 cores, and
mining needs neither. `fingerprint()` hashes those files, so a cache of mined labels knows its WordNet.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from synood.config import cache_home
from synood.errors import UserError

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset, WordNetCorpusReader

# lexnames(5WN) of WordNet 3.0: the lexicographer file names, indexed by file number.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
_POS_NUMBERS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_WN_POS = {"noun": "n", "adj": "a"}  # nltk's "a" includes the satellites ("s")
_REQUIRED = tuple(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv"))
_OPTIONAL = ("adj.exc", "adv.exc", "noun.exc", "verb.exc", "cntlist.rev")
_FIXES = ("Fix: `apt-get install wordnet-base wordnet-sense-index` (or `make run`, which does it), "
          "or `python -m nltk.downloader wordnet`.")
_LOCK = threading.RLock()  # guards loading, and reads: nltk's reader shares one file handle per pos
_loaded: tuple[WordNetCorpusReader, str] | None = None


class WordNetUnavailableError(UserError, RuntimeError):
    """No usable WordNet 3.0: the message lists where it looked and how to install one."""


@dataclass(frozen=True)
class Candidate:
    word: str  # lowercased, spaces for underscores
    pos: str  # "noun" | "adj"
    lexname: str  # of the first synset (WordNet order) the word came from, e.g. "noun.person"


@dataclass(frozen=True)
class Dictionary:
    """A WordNet dictionary's files: a folder, or a zip (nltk's wordnet.zip) with the files under `member`."""

    path: Path
    member: str | None = None

    def read(self, name: str) -> bytes:
        if self.member is None:
            return (self.path / name).read_bytes()
        import zipfile

        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member + name)


def wordnet() -> WordNetCorpusReader:
    """The process-wide WordNet 3.0 reader, loaded on first use (a few seconds)."""
    return _state()[0]


def wordnet_source() -> str:
    """Where the WordNet in use was loaded from, for the UI and CLI to show."""
    return _state()[1]


def candidates(pos: str) -> list[Candidate]:
    """NegMining's candidate corpus for "noun" or "adj", sorted by word (see the module docstring)."""
    if pos not in _WN_POS:
        raise ValueError(f"pos must be 'noun' or 'adj', not {pos!r}")
    return list(_candidates(pos, dictionary()))


def dictionary() -> Dictionary:
    """The WordNet files mining reads, found without nltk: nltk's own data (corpora/wordnet, or its zip) on nltk's
    data path, then the system dictionaries, as the reader looks; else the reader's own root (or its error)."""
    for root in _nltk_data_paths():
        folder = Path(root) / "corpora" / "wordnet"
        if (folder / "data.noun").is_file():
            return Dictionary(folder)
        if folder.with_suffix(".zip").is_file():
            return Dictionary(folder.with_suffix(".zip"), "wordnet/")
    for src in _system_dirs():
        if _problem(src) is None:
            return Dictionary(src)
    root = wordnet().root  # nltk found what the look above did not, or this raises the full message
    if hasattr(root, "zipfile"):
        return Dictionary(Path(root.zipfile.filename), root.entry)
    return Dictionary(Path(root.path))


def fingerprint() -> str:
    """sha256 of the data files `candidates` parses (data.noun, data.adj): what a cache of mined labels depends on."""
    return _fingerprint(dictionary())


def imagenet_synsets() -> list[Synset]:
    """The 1000 ImageNet-1k class synsets in class-index order (timm's WNID list)."""
    return list(_imagenet())


def imagenet_glosses() -> list[str]:
    """The WordNet definitions of the 1000 ImageNet classes in class-index order, read from data.noun at each
    WNID's offset and cut as nltk's `Synset.definition()` does (without loading the reader)."""
    return list(_imagenet_glosses(dictionary()))


def gloss(synset: Synset) -> str:
    """The synset's WordNet definition."""
    return synset.definition()


def related(a: Synset, b: Synset, max_steps: int = 2) -> bool:
    """True if a and b are the same, one is a hypernym ancestor of the other, or they share a hypernym
    at most max_steps above both: used to keep a class's relatives out of its image's context labels."""
    with _LOCK:
        if a == b or a in _ancestors(b) or b in _ancestors(a):
            return True
        return bool(_ancestors(a, max_steps) & _ancestors(b, max_steps))


def senses(word: str, pos: str = "noun") -> list[Synset]:
    """The synsets of a word (spaces or underscores) in one part of speech, WordNet's order first."""
    with _LOCK:
        return wordnet().synsets(word.replace(" ", "_"), _WN_POS[pos])


def common_nouns(lexnames: Sequence[str], excluded: Sequence[str] = ()) -> list[str]:
    """Candidate nouns of the given lexnames that SemCor tags at least once (common words), leaving out
    those whose first sense lies under a synset named in `excluded` (e.g. "creation.n.02")."""
    reader = wordnet()
    with _LOCK:
        roots = {reader.synset(name) for name in excluded}
        found = []
        for candidate in candidates("noun"):
            if candidate.lexname not in lexnames:
                continue
            found_senses = reader.synsets(candidate.word.replace(" ", "_"), "n")
            if (any(lemma.count() > 0 for s in found_senses for lemma in s.lemmas())
                    and not roots & set(found_senses[0].closure(lambda s: s.hypernyms()))):
                found.append(candidate.word)
        return found


def _ancestors(synset: Synset, max_steps: int | None = None) -> set[Synset]:
    found: set[Synset] = set()
    frontier, steps = [synset], 0
    while frontier and (max_steps is None or steps < max_steps):
        frontier = [h for s in frontier for h in s.hypernyms() + s.instance_hypernyms() if h not in found]
        found.update(frontier)
        steps += 1
    return found


_DATA_FILES = {"noun": "data.noun", "adj": "data.adj"}
_SYNTACTIC_MARKER = re.compile(r"\([^()]*\)$")  # "(a)", "(p)", "(ip)" after an adjective lemma, as nltk strips it
_QUOTED = re.compile(r'["].*?["]')  # the examples in a gloss, which nltk's definition() leaves out


@functools.lru_cache(maxsize=4)
def _candidates(pos: str, files: Dictionary) -> tuple[Candidate, ...]:
    """First lemma of every synset in data-file order (nltk's all_synsets order), as nltk parses a data line:
    offset, lexicographer file number, ss_type, lemma count, then the first lemma with its marker removed."""
    lexname_of: dict[str, str] = {}
    for line in _data_lines(files, _DATA_FILES[pos]):
        fields = line.split(" ", 5)
        word = _SYNTACTIC_MARKER.sub("", fields[4]).replace("_", " ").lower()
        lexname_of.setdefault(word, LEXNAMES[int(fields[1])])
    return tuple(Candidate(word, pos, lexname_of[word]) for word in sorted(lexname_of))


def _data_lines(files: Dictionary, name: str) -> list[str]:
    """The synset lines of a data file (the licence header lines start with spaces); refuses a WordNet not 3.0."""
    text = files.read(name).decode("utf8")
    version = re.search(r"Word[nN]et (\d+|\d+\.\d+) Copyright", text[:4096])
    if version is None or version[1] != "3.0":
        raise WordNetUnavailableError(f"{files.path}: {name} is not WordNet 3.0's; " + _FIXES)
    return [line for line in text.split("\n") if line and not line[0].isspace()]


@functools.lru_cache(maxsize=4)
def _fingerprint(files: Dictionary) -> str:
    digest = hashlib.sha256()
    for name in _DATA_FILES.values():
        digest.update(files.read(name))
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _imagenet_glosses(files: Dictionary) -> tuple[str, ...]:
    data = files.read("data.noun")
    glosses = []
    for wnid in imagenet_wnids():
        start = int(wnid[1:])
        line = data[start:data.index(b"\n", start)].decode("utf8")
        _, gloss = line.strip().split("|")
        glosses.append(_QUOTED.sub("", gloss).strip().strip("; "))
    return tuple(glosses)


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids ("n01440764", ...) in class-index order, from timm's data files."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("timm is not installed; it ships the ImageNet WNIDs (pip install timm)")
    info = Path(spec.submodule_search_locations[0]) / "data" / "_info"
    return tuple((info / "imagenet_synsets.txt").read_text().split())


@functools.cache
def _imagenet() -> tuple[Synset, ...]:
    reader = wordnet()
    with _LOCK:
        return tuple(reader.synset_from_pos_and_offset("n", int(wnid[1:])) for wnid in imagenet_wnids())


def _state() -> tuple[WordNetCorpusReader, str]:
    global _loaded
    with _LOCK:
        if _loaded is None:
            _loaded = _load(_system_dirs(), cache_home())
        return _loaded


def _nltk_data_paths() -> list[str]:
    """nltk.data.path: nltk's own list once nltk is imported, else the list nltk builds on import (importing it
    costs about 2 s, as it imports scipy and scikit-learn)."""
    loaded = sys.modules.get("nltk.data")
    if loaded is not None:
        return [str(p) for p in loaded.path]
    paths = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    if os.path.expanduser("~/") != "~/":
        paths.append(os.path.expanduser("~/nltk_data"))
    return paths + [os.path.join(sys.prefix, "nltk_data"), os.path.join(sys.prefix, "share", "nltk_data"),
                    os.path.join(sys.prefix, "lib", "nltk_data"), "/usr/share/nltk_data", "/usr/local/share/nltk_data",
                    "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]


def _system_dirs() -> list[Path]:
    env = os.environ
    dirs = [env.get("SYNOOD_WORDNET"), env.get("WNHOME") and os.path.join(env["WNHOME"], "dict"),
            env.get("WNSEARCHDIR"), "/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/local/WordNet-3.0/dict"]
    return [Path(d) for d in dict.fromkeys(d for d in dirs if d)]


def _load(search: Sequence[Path], home: Path) -> tuple[WordNetCorpusReader, str]:
    """nltk's own WordNet, else a mirror of the first usable dictionary in search (cached under home)."""
    import nltk

    looked = []
    try:
        root = nltk.data.find("corpora/wordnet")
        return _reader(root), f"nltk data: {root}"
    except LookupError:
        looked.append(f"nltk data (corpora/wordnet) in {', '.join(map(str, nltk.data.path))}: not found")
    except (OSError, ValueError) as exc:
        looked.append(f"nltk data (corpora/wordnet): {exc}")
    for src in search:
        problem = _problem(src)
        if problem is None:
            try:
                root = _mirror(src, home)
                if str(root) not in nltk.data.path:
                    nltk.data.path.append(str(root))
                copy = root / "corpora" / "wordnet"
                return _reader(str(copy)), f"{src} (nltk copy in {copy})"
            except (OSError, LookupError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        looked.append(f"{src}: {problem}")
    raise WordNetUnavailableError("No usable WordNet 3.0. Looked in:\n  - " + "\n  - ".join(looked) + "\n" + _FIXES)


def _problem(src: Path) -> str | None:
    if not src.is_dir():
        return "no such directory"
    missing = [name for name in _REQUIRED if not (src / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    if not (src / "index.sense").is_file():
        return "no index.sense, which nltk cannot load WordNet without (Debian: wordnet-sense-index)"
    return None


def _mirror(src: Path, home: Path) -> Path:
    """Copy src's dictionary plus a generated lexnames to <home>/nltk_data/corpora/wordnet, once (atomic
    rename, so a concurrent creator is harmless); return the nltk data root <home>/nltk_data."""
    root = home / "nltk_data"
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return root
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in (*_REQUIRED, "index.sense", *_OPTIONAL):
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        (tmp / "lexnames").write_text(_lexnames_text())
        for path in tmp.iterdir():
            path.chmod(0o644)  # nltk refuses group- or world-writable files
        os.rename(tmp, target)
    except OSError:
        if not (target / "lexnames").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_POS_NUMBERS[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def _reader(root: object) -> WordNetCorpusReader:
    """root: a directory (str) or an nltk PathPointer."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        reader = WordNetCorpusReader(root, None)
    if reader.get_version() != "3.0":  # ImageNet's WNIDs are WordNet 3.0 offsets
        raise ValueError(f"{root} holds WordNet {reader.get_version()}, not 3.0")
    return reader
