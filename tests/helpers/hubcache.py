"""Put files into the Hugging Face hub cache layout, as a download would, for offline tests."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def put_in_hf_cache(repo_id: str, files: dict[str, bytes | Path], cache: Path | None = None) -> Path:
    """Write `files` (relative path -> bytes or a file/folder to copy) as the `main` snapshot of `repo_id`."""
    from synood.models.sources import hf_hub_cache

    repo = (cache or hf_hub_cache()) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for rel, content in files.items():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif Path(content).is_dir():
            shutil.copytree(content, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(content, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
