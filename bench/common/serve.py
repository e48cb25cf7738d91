"""Start the real app (`python app.py ...`) on 127.0.0.1 and a free port, for client and browser tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    """A running app: where it answers, and its process (for memory readings)."""

    url: str
    pid: int


@contextmanager
def running_app(*args: str, log: Path, timeout: float = 120.0,
                env: dict[str, str | None] | None = None) -> Iterator[str]:
    """Yield the URL of `python app.py --port N *args` once it answers; stop it afterwards.
    `env` adds variables to the test environment (None removes one)."""
    with serving(*args, log=log, timeout=timeout, env=env) as served:
        yield served.url


@contextmanager
def serving(*args: str, log: Path, timeout: float = 120.0,
            env: dict[str, str | None] | None = None) -> Iterator[Served]:
    """As `running_app`, yielding the URL and the app's process id."""
    port = free_port()
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args],
                                cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app did not answer within {timeout} s:\n{log.read_text()}")
            time.sleep(0.3)
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
