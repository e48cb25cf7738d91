"""Memory before loading (synood.models.memory): parameter counts from published configs, from weight files and of
the tiny twins; the estimate against the twins' measured allocation; the dtype that fits; the refusal; offload."""
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from bench.offload_memory import measure
from synood.config import ConfigError, load_config, parse_bytes
from synood.models import memory, suites
from synood.models.memory import BYTES, KNOWN, MARGIN, OVERHEAD, Free, ModelTooBigError, footprint, plan
from synood.models.suites import DIFFUSERS_FILES, SUITES, ComponentSpec, Suite
from tests.helpers.hubcache import put_in_hf_cache

GiB, MiB = 2**30, 2**20
PAPER = {role: SUITES["paper"].components[role] for role in ("encoder", "classifier", "labeller", "generator")}


def free(cpu: int, cuda: int | None = None):
    """A `free` callable for plan(): these many bytes free per device kind."""
    return lambda kind: Free(kind, cpu if kind == "cpu" else cuda or 0)


@pytest.mark.parametrize("role, expected", [
    ("labeller", {"total": 7.06e9}),
    ("generator", {"unet": 866e6, "vae": 84e6, "text_encoder": 340e6}),
    ("encoder", {"total": 150e6}),
    ("classifier", {"total": 25.6e6}),
])
def test_published_configs_give_the_recorded_counts(role, expected):
    """The paper's models instantiated on the meta device from the shipped configs: the counts KNOWN records, and
    the published sizes (LLaVA-1.5-7B 7.06B; SD2's UNet 866M, VAE 84M, text encoder 340M; ViT-B/16 150M;
    ResNet-50 25.6M) within 1 %."""
    spec = PAPER[role]
    counted = memory.count_from_config(spec.family, spec.model)
    assert counted == KNOWN[spec.family, spec.model].parts
    for part, value in expected.items():
        got = sum(counted.values()) if part == "total" else counted[part]
        assert got == pytest.approx(value, rel=0.01), (part, got)


def test_tiny_twins_are_counted_as_built():
    from synood.models import clip  # registers the tiny ViT's config with open_clip
    from synood.models.classifier import TINY_RESNET, _architecture
    from synood.models.generator import tiny_pipeline
    from synood.models.labeller import tiny_llava

    def count(module):
        return sum(t.numel() for t in module.parameters()) + sum(
            t.numel() for t in module.buffers() if t.is_floating_point())

    pipe = tiny_pipeline()
    assert KNOWN["diffusers", "tiny"].parts == {k: count(getattr(pipe, k)) for k in ("unet", "vae", "text_encoder")}
    assert KNOWN["transformers", "tiny"].parts == {"model": count(tiny_llava()[0])}
    assert KNOWN["torchvision", TINY_RESNET].parts == {"model": count(_architecture(TINY_RESNET))}
    tiny_vit = clip.open_clip.create_model("synood-tiny-ViT")
    assert KNOWN["open_clip", "synood-tiny-ViT"].parts == {"model": count(tiny_vit)}


@pytest.mark.parametrize("role", ["encoder", "classifier", "labeller", "generator"])
def test_estimate_covers_what_each_tiny_twin_takes(role, capsys):
    """Each twin loaded through Suite.get in a fresh process and run once: the tensors it holds are its counted
    parameters x 4 bytes within MARGIN, and the process's peak RSS growth stays under the estimate."""
    got = measure(role, False, "cpu")
    with capsys.disabled():
        print(f"\n[memory] tiny {role}: tensors {got['tensor_ratio']:.3f} x params x 4, RSS growth "
              f"{got['rss_growth'] / MiB:.0f} MB, estimate {got['estimate'] / MiB:.0f} MB")
    assert got["parameters"] == sum(KNOWN[SUITES["tiny"].components[role].family,
                                         SUITES["tiny"].components[role].model].parts.values())
    assert 1 <= got["tensor_ratio"] <= 1 + MARGIN
    assert got["rss_growth"] <= got["estimate"]


def test_counts_weight_files_without_loading_them(tmp_path):
    """safetensors headers give exact counts; a .pth counts as bytes / 4 (never unpickled); sizes on disk too."""
    safe = tmp_path / "clip.safetensors"
    save_file({"a": torch.zeros(3, 5), "b": torch.zeros(7, dtype=torch.float16)}, str(safe))
    found = footprint(ComponentSpec("encoder", "open_clip", "ViT-B-16-quickgelu", str(safe)))
    assert found.parts == {"model": 22} and found.disk_bytes == safe.stat().st_size
    assert found.source == "weight files on this machine" and found.download_bytes is None
    pth = tmp_path / "resnet.pth"
    pth.write_bytes(b"\0" * 4000)
    assert footprint(ComponentSpec("classifier", "torchvision", "resnet50", str(pth))).parts == {"model": 1000}


def test_counts_a_cached_diffusers_snapshot_per_sub_model(tmp_path):
    repo = "someone/inpaint-copy"
    files: dict = {names[0]: b"{}" for names in DIFFUSERS_FILES}  # configs and tokenizer, as a download leaves them
    for part, name, n in (("unet", "diffusion_pytorch_model", 10), ("vae", "diffusion_pytorch_model", 4),
                          ("text_encoder", "model", 6)):
        save_file({"w": torch.zeros(n)}, str(tmp_path / f"{part}.safetensors"))
        files[f"{part}/{name}.safetensors"] = tmp_path / f"{part}.safetensors"
    put_in_hf_cache(repo, files)
    spec = ComponentSpec("generator", "diffusers", repo)
    assert footprint(spec).parts == {"unet": 10, "vae": 4, "text_encoder": 6}


def test_sharded_transformers_index_counts_every_shard(tmp_path):
    folder = tmp_path / "llava-copy"
    folder.mkdir()
    for i, n in enumerate((100, 50)):
        save_file({f"w{i}": torch.zeros(n, dtype=torch.float16)}, str(folder / f"model-{i}.safetensors"))
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 300}, "weight_map": {"w0": "model-0.safetensors", "w1": "model-1.safetensors"}}))
    found = footprint(ComponentSpec("labeller", "transformers", str(folder)))
    assert found.parameters == 150
    header = struct.unpack("<Q", (folder / "model-0.safetensors").read_bytes()[:8])[0]
    assert found.disk_bytes == sum((folder / f"model-{i}.safetensors").stat().st_size for i in range(2)) > header


def test_the_offline_suite_is_never_refused_here():
    for role in ("encoder", "classifier", "labeller", "generator"):
        decided = Suite(SUITES["offline"], device="cpu").plan(role)
        assert decided.fits and decided.dtype == "float32"


def test_cpu_auto_takes_bfloat16_for_the_labeller_when_only_that_fits():
    labeller = PAPER["labeller"]
    f32, bf16 = (memory.footprint(labeller).estimate(d) for d in ("float32", "bfloat16"))
    assert f32 == int(7_063_427_200 * 4 * (1 + MARGIN)) + OVERHEAD
    between = (f32 + bf16) // 2
    decided = plan(labeller, "cpu", None, "auto", free=free(between))
    assert (decided.dtype, decided.fits) == ("bfloat16", True) and "float32 would not fit" in decided.note
    assert plan(labeller, "cpu", None, "auto", free=free(f32 + GiB)).dtype == "float32"
    stuck = plan(labeller, "cpu", None, "auto", free=free(bf16 - GiB))
    assert (stuck.dtype, stuck.fits) == ("float32", False)
    assert plan(labeller, "cpu", None, "float32", free=free(between)).fits is False  # an explicit dtype is kept
    assert plan(PAPER["encoder"], "cpu", None, "auto", free=free(1)).dtype == "float32"  # not a half family


def test_cuda_auto_is_float16_for_the_generator_and_labeller_only():
    assert plan(PAPER["generator"], "cuda", 0, "auto", free=free(0, 80 * GiB)).dtype == "float16"
    assert plan(PAPER["labeller"], "cuda", 0, "auto", free=free(0, 80 * GiB)).dtype == "float16"
    assert plan(PAPER["encoder"], "cuda", 0, "auto", free=free(0, 80 * GiB)).dtype == "float32"


def test_the_loader_uses_the_dtype_the_check_chose():
    """A limit between the tiny generator's float32 and bfloat16 estimates: it loads in bfloat16; the tiny encoder,
    not a half-precision family, is refused with one message naming it and the options."""
    generator = footprint(SUITES["tiny"].components["generator"])
    limit = (generator.estimate("float32") + generator.estimate("bfloat16")) // 2
    suite = Suite(SUITES["tiny"], device="cpu", memory_limit=f"{limit}B")
    assert suite.get("generator").pipe.unet.dtype == torch.bfloat16
    assert suite.dtypes["generator"] == "bfloat16"
    with pytest.raises(ModelTooBigError) as refused:
        suite.get("encoder")
    message = str(refused.value)
    assert "\n" not in message and suite.loaded()["encoder"] is None
    for words in ("The tiny suite's image/text encoder (open_clip synood-tiny-ViT [random init])", "at float32",
                  "the memory limit allows", "`--dtype bfloat16`", "`--encoder ...`", "`--suite offline`"):
        assert words in message
    with pytest.raises(ModelTooBigError, match=r"more free memory \(even `--dtype bfloat16` needs about 265 MB\)"):
        Suite(SUITES["tiny"], device="cpu", memory_limit="200MB").get("encoder")  # no lower dtype fits: not offered


def test_offload_needs_the_largest_sub_model_on_the_gpu():
    """diffusers' model offload: the UNet on the GPU, everything in RAM; device_map=auto: GPU + RAM hold it all."""
    generator, labeller = PAPER["generator"], PAPER["labeller"]
    sd2 = footprint(generator)
    decided = plan(generator, "cuda", 0, "auto", offload=True, free=free(64 * GiB, 8 * GiB))
    assert decided.needs == {"cuda": sd2.estimate("float16", 865_925_124), "cpu": sd2.estimate("float16")}
    assert decided.fits and "offload" in decided.note
    small_gpu = free(32 * GiB, 10 * GiB)
    assert not plan(labeller, "cuda", 0, "auto", free=small_gpu).fits
    offloaded = plan(labeller, "cuda", 0, "auto", offload=True, free=small_gpu)
    assert offloaded.fits and offloaded.needs == {"cpu": footprint(labeller).estimate("float16") - 10 * GiB}
    on_cpu = plan(generator, "cpu", None, "auto", offload=True, free=free(64 * GiB))
    assert on_cpu.needs == {"cpu": sd2.estimate("float32")} and "no effect on CPU" in on_cpu.note


def test_offload_wiring_of_the_loaders(monkeypatch):
    """On CUDA the generator calls diffusers' enable_model_cpu_offload instead of .to; the labeller is dispatched by
    accelerate as device_map="auto" (here, without a GPU, all of it to the CPU); on CPU neither changes anything."""
    from synood.models import generator, labeller

    calls = []
    monkeypatch.setattr(generator.StableDiffusionInpaintPipeline, "enable_model_cpu_offload",
                        lambda self, device=None: calls.append(device))
    tiny = SUITES["tiny"].components
    generator.load(tiny["generator"], torch.device("cuda"), "float32", offload=True)
    assert calls == [torch.device("cuda")]
    generator.load(tiny["generator"], torch.device("cpu"), "float32", offload=True)
    assert calls == [torch.device("cuda")]
    dispatched = labeller.load(tiny["labeller"], torch.device("cuda"), "float32", offload=True)
    assert dispatched.model.hf_device_map == {"": "cpu"}
    assert not getattr(labeller.load(tiny["labeller"], torch.device("cpu"), "float32", offload=True).model,
                       "hf_device_map", None)


def test_suite_passes_offload_to_the_loaders_that_take_it(monkeypatch):
    from synood.models import generator

    seen = {}
    real = generator.load

    def load(spec, device, dtype, offload=False):
        seen.update(dtype=dtype, offload=offload)
        return real(spec, device, dtype)

    monkeypatch.setattr(generator, "load", load)
    Suite(SUITES["tiny"], device="cpu", offload=True).get("generator")
    assert seen == {"dtype": "float32", "offload": True}


def test_memory_limit_and_offload_in_the_config():
    config = load_config(None, ["models.memory_limit=1.5GB", "models.offload=true"])
    assert parse_bytes(config.models.memory_limit) == 3 * GiB // 2 and config.models.offload is True
    assert parse_bytes("512 MB") == 512 * MiB and parse_bytes("100") == 100
    with pytest.raises(ConfigError, match="models.memory_limit: 'lots' is not an amount of memory"):
        load_config(None, ["models.memory_limit=lots"])
    with pytest.raises(ConfigError, match="models.memory_limit"):
        suites.Suite(SUITES["tiny"], memory_limit="8 parsecs")


def test_sizes_read_as_people_write_them():
    assert memory.size(300 * MiB) == "300 MB" and memory.size(int(16.7 * GiB)) == "16.7 GB"
    assert BYTES == {"float32": 4, "bfloat16": 2, "float16": 2}


def test_a_broken_weight_file_is_counted_from_the_published_config(tmp_path):
    """Garbage where a checkpoint should be: no count from it (the loader will say it is broken), KNOWN's instead."""
    for i, content in enumerate((b"x", b"\xff" * 64, struct.pack("<Q", 2) + b"[]")):
        broken = tmp_path / f"clip{i}.safetensors"
        broken.write_bytes(content)
        found = footprint(ComponentSpec("encoder", "open_clip", "ViT-B-16-quickgelu", str(broken)))
        assert found.parameters == 149_626_666 and found.disk_bytes is None


def test_a_cuda_device_on_a_machine_without_it_is_one_message():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(suites.ModelUnavailableError, match="--device cuda:1: CUDA is not available"):
        Suite(SUITES["tiny"], device="cuda:1")
    assert memory.device_kind("cpu") == ("cpu", None) and memory.device_kind("auto") == ("cpu", None)
