"""Start-up figures: the availability probe, the tiny suite, and the app's time to first page.

Each figure comes with the plain way of doing the same work, measured in the same run:
- probe: `synood models` (filesystem only) vs. asking the four model libraries themselves,
  which means importing them (open_clip, torchvision, diffusers, transformers);
- app: `python app.py` (components load lazily) vs. the same app loading every component first.
Run: .venv/bin/python bench/startup.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common.serve import free_port  # noqa: E402

PLAIN_PROBE = """
import open_clip, torchvision.models, diffusers, transformers
from open_clip.pretrained import get_pretrained_cfg
get_pretrained_cfg('ViT-B-16-quickgelu', 'openai')
torchvision.models.get_model_weights('resnet50')['IMAGENET1K_V2'].url
for load, repo in ((diffusers.StableDiffusionInpaintPipeline.from_pretrained, 'stabilityai/stable-diffusion-2-inpainting'),
                   (transformers.AutoConfig.from_pretrained, 'llava-hf/llava-1.5-7b-hf')):
    try:
        load(repo, local_files_only=True)
    except Exception:
        pass
"""
EAGER_APP = """
import sys
sys.argv = ['app.py', '--suite', 'tiny', '--port', sys.argv[1]]
from synood.models import ROLES, Suite  # noqa: E402
_from_config = Suite.from_config
def eager(models):
    suite = _from_config(models)
    for role in ROLES:
        suite.get(role)
    return suite
Suite.from_config = eager
import app
app.main()
"""


def timed(cmd: list[str], runs: int, env: dict) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_to_page(cmd: list[str], port: int, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    return time.perf_counter() - start
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd} exited with {proc.returncode}")
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=tempfile.mkdtemp(), TORCH_HOME=tempfile.mkdtemp())
    synood = str(Path(sys.executable).with_name("synood"))
    probe = timed([synood, "models"], 5, env)
    plain = timed([sys.executable, "-c", PLAIN_PROBE], 3, env)
    print(f"probe   synood models: {probe:.2f} s | asking the libraries: {plain:.2f} s | ratio {plain / probe:.0f}x")

    start = time.perf_counter()
    subprocess.run([synood, "models", "load", "--suite", "tiny"], check=True, capture_output=True, env=env)
    print(f"tiny    `synood models load --suite tiny` (imports + build all four): {time.perf_counter() - start:.1f} s")

    code = ("import time; from synood.config import ModelsConfig; from synood.models import ROLES, Suite; "
            "import synood.models.clip, synood.models.classifier, synood.models.generator, synood.models.labeller; "
            "s = Suite.from_config(ModelsConfig(suite='tiny')); t = time.perf_counter(); "
            "[s.get(r) for r in ROLES]; print(time.perf_counter() - t)")
    build = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                 env=env, cwd=ROOT).stdout)
    print(f"tiny    building the four components (libraries already imported): {build:.1f} s")

    lazy = [time_to_page([sys.executable, "app.py", "--suite", "tiny", "--port", str(p)], p, env)
            for p in (free_port(), free_port())]
    eager = [time_to_page([sys.executable, "-c", EAGER_APP, str(p)], p, env) for p in (free_port(), free_port())]
    print(f"app     first page, lazy loading: {min(lazy):.1f} s | loading every component first: "
          f"{min(eager):.1f} s | ratio {min(eager) / min(lazy):.1f}x (tiny suite; the paper suite's ~20 GB "
          "would widen it)")


if __name__ == "__main__":
    main()
