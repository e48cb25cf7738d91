"""The `synood` command through its installed entry point, as the CLI tests run it."""
import os
import subprocess
import sys
from pathlib import Path

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
