"""Confine the app's path inputs to the data roots it was started with.

Whatever a browser types into the app (a generation folder, a manifest, an ID or OOD folder, a detector file) and
every file the app then reads on its behalf (the images found in a folder, the source and synthetic images a
manifest names) must lie under one of the data roots. Paths are judged by where they lead: symlinks are followed
and `..` is resolved first, so neither can reach beyond a root. A path typed in that leads outside is refused with
an AccessError (before it is even looked up, so the message is the same whether it exists or not). A file found
inside a confined folder, or named by a manifest, that leads outside is never opened: the Feature map skips and names
it like an unreadable file, the Synthetic pairs tab shows a placeholder, and the Fine-tuning tab, which hands whole
folders and manifests to training, refuses them with a message naming one such file.

The roots are the app's `--data-root DIR` flags, else $SYNOOD_DATA_ROOTS (folders separated by os.pathsep), else
the working directory the app was started in. Only the app is confined: the CLI is the local user's own tool,
runs with that user's rights on paths they type themselves, and never uses this module. A hard link, or a link
replaced between the check and the read, needs write access inside a root and is not guarded against.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from synood.data.images import find_images
from synood.data.manifest import load_manifest
from synood.records.runs import runs_folder
from synood.errors import UserError

ROOTS_VARIABLE = "SYNOOD_DATA_ROOTS"


class AccessError(UserError, ValueError):
    """A path outside the app's data roots (or not a usable path at all); the message names it and says why."""


def leads_outside(path: str | os.PathLike) -> str:
    """The message for a file found in a confined folder (or named by a manifest) that is skipped."""
    return f"{path}: leads outside the app's data roots"


def _expanded(text: str | os.PathLike) -> Path:
    """`text` as a Path with `~` expanded; AccessError if the home folder it names cannot be found."""
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:
        raise AccessError(f"{str(text)!r}: not a usable path ({exc})") from None


def _resolved(path: Path) -> Path:
    """`path` made absolute with every symlink and `..` resolved (as far as it exists); AccessError if it cannot be."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, an embedded NUL byte, a name too long
        raise AccessError(f"{str(path)!r}: not a usable path ({exc})") from None


@dataclass(frozen=True)
class DataRoots:
    """The resolved folders the app may read under."""

    roots: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Iterable[str | os.PathLike]) -> DataRoots:
        """Roots from folder names (`~` expanded, relative ones against the working directory); AccessError
        names one that is not an existing folder."""
        roots: list[Path] = []
        for folder in folders:
            path = _expanded(folder)
            resolved = _resolved(path)
            if not resolved.is_dir():
                raise AccessError(f"{path}: a data root must be an existing folder")
            if resolved not in roots:
                roots.append(resolved)
        if not roots:
            raise AccessError("no data root given")
        return cls(tuple(roots))

    @classmethod
    def from_settings(cls, flags: Sequence[str] | None) -> DataRoots:
        """The app's roots: its --data-root flags, else $SYNOOD_DATA_ROOTS, else the working directory."""
        if flags:
            return cls.of(flags)
        variable = [part for part in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if part.strip()]
        return cls.of(variable or [Path.cwd()])

    def describe(self) -> str:
        """The roots, comma-separated, for messages."""
        return ", ".join(str(root) for root in self.roots)

    def with_folder(self, folder: str | os.PathLike) -> DataRoots:
        """These roots and one more folder the app owns (it need not exist yet)."""
        extra = _resolved(_expanded(folder))
        return self if extra in self.roots else DataRoots(self.roots + (extra,))

    def with_runs(self, home: str | Path) -> DataRoots:
        """These roots and the runs folder of the app's home (config.paths.home), where fine-tuning writes its
        detector files."""
        return self.with_folder(runs_folder(home))

    def _holds(self, resolved: Path) -> bool:
        return any(resolved.is_relative_to(root) for root in self.roots)

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether `path` (as a reader would open it: relative to the working directory, no `~`), symlinks and `..`
        followed, lies in (or is) one of the roots."""
        try:
            return self._holds(_resolved(Path(path)))
        except AccessError:
            return False

    def outside(self, path: str | os.PathLike) -> str:
        """The message for a path that leads outside the roots."""
        path = Path(path)
        try:
            resolved = _resolved(path)
        except AccessError as exc:
            return str(exc)
        shown = str(path) if resolved == path else f"{path} (that is {resolved})"
        return (f"{shown}: outside the app's data roots ({self.describe()}); start the app with --data-root DIR "
                "to allow another folder")

    def check(self, text: str | os.PathLike) -> Path:
        """The path the user typed, resolved (`~` expanded, relative to the working directory, symlinks and `..`
        followed); AccessError when it is empty or leads outside every root. It need not exist."""
        typed = str(text).strip()
        if not typed:
            raise AccessError("no path given")
        path = _expanded(typed)
        resolved = _resolved(path)
        if not self._holds(resolved):
            raise AccessError(self.outside(path))
        return resolved

    def split(self, paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
        """(the paths that lead inside the roots, those that do not), each in order, as `contains` judges them.
        Each folder is resolved once (a file that is not a link is where its folder leads, plus its name), so the
        100k images of a manifest cost about one lstat each."""
        folders: dict[str, tuple[Path | None, bool]] = {}
        kept: list[Path] = []
        outside: list[Path] = []
        for given in paths:
            path = given if isinstance(given, Path) else Path(given)
            folder, name = os.path.split(os.fspath(path))
            if name in ("", "..") or os.path.islink(path):
                inside = self.contains(path)
            else:
                if folder not in folders:
                    try:
                        found = _resolved(Path(folder or "."))
                        folders[folder] = (found, self._holds(found))
                    except AccessError:
                        folders[folder] = (None, False)
                resolved, holds = folders[folder]
                inside = holds or (resolved is not None and resolved / name in self.roots)
            (kept if inside else outside).append(path)
        return kept, outside


def confined_generation(roots: DataRoots, path: str) -> str:
    """The generation's resolved path; a UserError unless it and every image its manifest names (training reads the
    synthetic images and their sources) lie under `roots`."""
    generation = roots.check(path)
    manifest = load_manifest(generation)
    named = list(dict.fromkeys(image for pair in manifest.pairs for image in (pair.image, pair.source)))
    _, outside = roots.split(named)
    if outside:
        raise UserError(f"{manifest.path}: {len(outside):,} of the {len(named):,} images it names are outside the "
                        f"app's data roots ({roots.describe()}), such as {outside[0]}; start the app with --data-root "
                        "DIR to allow their folder.")
    return str(generation)


def confined_folder(roots: DataRoots, path: str) -> str:
    """The image folder's resolved path; a UserError unless it and every image file in it lie under `roots`."""
    folder = roots.check(path)
    found = find_images(folder)
    _, outside = roots.split(found)
    if outside:
        raise UserError(f"{folder}: {len(outside):,} of its {len(found):,} image files lead outside the app's data "
                        f"roots ({roots.describe()}), such as {outside[0]}; remove those links or start the app with "
                        "--data-root DIR to allow their folder.")
    return str(folder)
