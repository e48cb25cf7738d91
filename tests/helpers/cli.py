"""The `synood` command through its installed entry point, as the CLI tests run it."""
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

from bench.common.serve import free_port

SYNOOD = str(Path(sys.executable).with_name("synood"))
NO_NETWORK = Path(__file__).resolve().parents[1] / "no_network"


def synood(*args, offline_flag=True, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `synood *args`; without `offline_flag` the hub is unreachable (tests/no_network) instead of switched off."""
    env = dict(os.environ, **(env_extra or {}))
    if not offline_flag:
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
        env["PYTHONPATH"] = str(NO_NETWORK)
    return subprocess.run([SYNOOD, *args], env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    """`result`, after checking it exited with `code` and printed no traceback."""
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def launched(processes: int, *args: str) -> list[str]:
    """The command line of `synood *args` under `accelerate launch` with `processes` CPU processes (gloo)."""
    return [str(Path(SYNOOD).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip",
            "127.0.0.1", "--main_process_port", str(free_port()), SYNOOD, *args]


def in_process(*args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `synood *args` run in this process, after checking it printed no traceback."""
    from synood.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def photo_sets(root: Path, ood: dict[str, tuple[str, ...]], ids: int = 6) -> Path:
    """root/id with the first `ids` packaged ID photos and root/<name> with each OOD set's named photos, linked."""
    from synood.data import photos

    chosen = {"id": photos.photos("id")[:ids], **{n: [photos.by_name(p) for p in names] for n, names in ood.items()}}
    for name, items in chosen.items():
        (root / name).mkdir()
        for photo in items:
            if photo.path.is_file():
                os.symlink(photo.path, root / name / f"{photo.name}{photo.path.suffix}")
    return root
