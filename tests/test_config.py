"""The typed config tree: paper defaults, YAML files, overrides and clear errors."""
import dataclasses
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from synood.method import finetune, scorers, synthesis
from synood.config import (CHOICES, Config, ConfigError, ModelsConfig, apply_mapping, apply_overrides, check, labelled,
                           load_config)
from synood.models import GenerationSettings, classifier, suites

SYNOOD = str(Path(sys.executable).with_name("synood"))  # the installed entry point


def test_defaults_are_the_papers_hyperparameters():
    c = Config()
    assert (c.neglabel.percentile, c.neglabel.keep_ratio, c.neglabel.ngroups, c.neglabel.temperature) == (
        95.0, 0.15, 100, 0.01)
    assert (c.neglabel.noun_template, c.neglabel.adjective_template) == ("the nice {}", "This is a {} photo")
    s = c.synthesis
    assert (s.strength, s.steps, s.guidance, s.iterations, s.step_size, s.m_out) == (
        0.6, 20, 8.0, 3, None, -5.0)  # step_size None: the generator's own, r * rho = 10 for diffusion
    assert (s.prompt_template, s.context_max_chars, s.per_class, s.gradient) == (
        "A photo only remain {}", 73, 50, "skip")
    p = c.projection
    assert (p.lr, p.weight_decay, p.epochs, p.batch_size) == (1e-3, 1e-5, 3, 128)
    n = c.negtune
    assert (n.lr, n.momentum, n.weight_decay, n.epochs, n.batch_size, n.use_projection, n.joint) == (
        2e-3, 0.9, 1e-5, 5, 128, False, False)
    assert c.models.suite == "auto" and c.models.device == "auto"


def test_where_the_paper_is_silent_the_defaults_are_the_authors_code():
    c = Config()
    assert (c.projection.input, c.projection.schedule, c.projection.eta_min) == ("raw", "epoch", 1e-5)
    assert (c.negtune.parameter, c.negtune.schedule, c.negtune.eta_min) == ("raw", "epoch", 0.0)
    assert (c.synthesis.step_rule, c.synthesis.batch_size) == ("image", 2)  # the paper's step; B of the released script
    assert c.models.classifier_resize == "antialias"


@pytest.mark.parametrize("key", ["projection.input", "negtune.parameter", "projection.schedule", "negtune.schedule",
                                 "synthesis.step_rule", "models.classifier_resize"])
def test_a_convention_outside_its_choices_is_refused(key):
    with pytest.raises(ConfigError, match=f"{key}: 'sideways' is not allowed; choose one of "):
        apply_overrides(Config(), [f"{key}=sideways"])


def test_a_run_recorded_before_a_convention_existed_resumes_as_it_started():
    from synood.records.runs import Run, config_of

    old = Config().to_dict("projection", "negtune")
    for section, key in (("projection", "input"), ("projection", "schedule"), ("projection", "eta_min"),
                         ("negtune", "parameter"), ("negtune", "schedule")):
        del old[section][key]
    run = Run(id="r", kind="finetune", status="stopped", created=0.0, updated=0.0, host="h", pid=0, config=old,
              inputs={})
    c = config_of(run, "/home")
    assert (c.projection.input, c.projection.schedule, c.projection.eta_min) == ("unit", "batch", 0.0)
    assert (c.negtune.parameter, c.negtune.schedule) == ("unit", "batch")
    run.config = Config().to_dict("projection", "negtune")
    assert config_of(run, "/home").projection.input == "raw"


def test_yaml_then_overrides_in_order(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("synthesis:\n  iterations: 7\n  loss: hinge\nmodels:\n  suite: tiny\n")
    c = load_config(f, ["synthesis.iterations=9", "negtune.joint=true", "models.generator=/data/sd2"])
    assert c.synthesis.iterations == 9 and c.synthesis.loss == "hinge"
    assert c.models.suite == "tiny" and c.models.generator == "/data/sd2" and c.negtune.joint is True


def test_values_are_typed():
    c = apply_overrides(Config(), ["projection.lr=5e-4", "synthesis.guidance=7", "models.encoder=none"])
    assert c.projection.lr == 5e-4 and isinstance(c.synthesis.guidance, float)
    assert c.models.encoder is None


def test_round_trip_through_yaml(tmp_path):
    c = apply_overrides(Config(), ["synthesis.seed=3", "neglabel.prune_csp=yes"])
    f = tmp_path / "dump.yaml"
    f.write_text(c.to_yaml())
    assert load_config(f).to_dict() == c.to_dict()
    assert yaml.safe_load(c.to_yaml())["synthesis"]["seed"] == 3


@pytest.mark.parametrize("override, words", [
    ("synthesis.iterations=abc", "synthesis.iterations: expected int"),
    ("synthesis.iterations=2.5", "expected an integer"),
    ("negtune.joint=maybe", "expected true or false"),
    ("nosuch.key=1", "unknown config section"),
    ("synthesis.nosuch=1", "unknown key 'synthesis.nosuch'"),
    ("synthesis.iterations", "not of the form"),
])
def test_bad_overrides_name_the_problem(override, words):
    with pytest.raises(ConfigError, match=words):
        apply_overrides(Config(), [override])


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("synthesis: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(bad)


BAD_VALUES = [  # (key, value as written in YAML or --set, the one line that refuses it)
    ("synthesis.loss", "bogus", "synthesis.loss: 'bogus' is not allowed; choose one of squared, hinge, energy"),
    ("synthesis.gradient", "exact", "synthesis.gradient: 'exact' is not allowed; choose one of skip, full"),
    ("finetune.combination", "all",
     "finetune.combination: 'all' is not allowed; choose one of both, projection, negatives, none"),
    ("models.suite", "big", "models.suite: 'big' is not allowed; choose one of auto, paper, offline, tiny"),
    ("models.dtype", "float64",
     "models.dtype: 'float64' is not allowed; choose one of auto, float32, float16, bfloat16"),
    ("projection.epochs", "-3", "projection.epochs: -3 is out of range; must be at least 0"),
    ("negtune.batch_size", "0", "negtune.batch_size: 0 is out of range; must be at least 1"),
    ("projection.lr", "0", "projection.lr: 0.0 is out of range; must be above 0"),
    ("negtune.weight_decay", "-1e-5", "negtune.weight_decay: -1e-05 is out of range; must be at least 0"),
    ("synthesis.iterations", "0", "synthesis.iterations: 0 is out of range; must be at least 1"),
    ("synthesis.batch_size", "0", "synthesis.batch_size: 0 is out of range; must be at least 1"),
    ("synthesis.strength", "1.5", "synthesis.strength: 1.5 is out of range; must be above 0 and at most 1"),
    ("neglabel.percentile", "101", "neglabel.percentile: 101.0 is out of range; must be at least 0 and at most 100"),
    ("neglabel.keep_ratio", "0", "neglabel.keep_ratio: 0.0 is out of range; must be above 0 and at most 1"),
    ("neglabel.temperature", "0", "neglabel.temperature: 0.0 is out of range; must be above 0"),
    ("finetune.synthetic_images", "0",
     "finetune.synthetic_images: 0 is out of range; must be at least 1 or none"),
    ("finetune.keep_states", "0", "finetune.keep_states: 0 is out of range; must be at least 1"),
    ("images.max_pixels", "-1", "images.max_pixels: -1 is out of range; must be at least 1 or none"),
]


@pytest.mark.parametrize("key, value, message", BAD_VALUES, ids=[key for key, _, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_key_and_what_is_allowed(key, value, message, tmp_path):
    assert "\n" not in message
    with pytest.raises(ConfigError) as override:
        apply_overrides(Config(), [f"{key}={value}"])
    assert str(override.value) == message
    section, name = key.split(".")
    f = tmp_path / "run.yaml"
    f.write_text(f"{section}:\n  {name}: {value}\n")
    with pytest.raises(ConfigError) as from_file:
        load_config(f)
    assert str(from_file.value) == f"config file {f}: {message}"


@pytest.mark.parametrize("key, value, message", BAD_VALUES[:8], ids=[key for key, _, _ in BAD_VALUES[:8]])
def test_objects_built_in_code_are_checked_the_same_way(key, value, message):
    """The app and the CLI's flags build sections with dataclasses.replace or set fields: the same check."""
    section, name = key.split(".")
    typed = yaml.safe_load(value)
    typed = float(typed) if name == "lr" else typed
    config = Config()
    with pytest.raises(ConfigError) as replaced:
        dataclasses.replace(getattr(config, section), **{name: typed})
    assert str(replaced.value) == message
    with pytest.raises(ConfigError) as assigned:
        setattr(getattr(config, section), name, typed)
    assert str(assigned.value) == message
    assert config == Config()  # a refused value is not kept


def test_the_apps_fine_tuning_boxes_give_the_same_one_line():
    import gradio as gr

    from ui.finetune_tab import hyperparameters

    values = [1e-3, -3, 128, 2e-3, 5, 128, None, "separate", False, "both", 0, 0, 0]  # projection epochs -3
    with pytest.raises(gr.Error) as error:
        hyperparameters(Config(), *values)
    assert error.value.message == "projection.epochs: -3 is out of range; must be at least 0"
    values[1], values[9] = 3, "all"
    with pytest.raises(gr.Error) as error:
        hyperparameters(Config(), *values)
    assert error.value.message == BAD_VALUES[2][2]


def test_a_stored_run_with_a_bad_value_is_refused_in_one_line():
    stored = Config().to_dict("projection")
    stored["projection"]["epochs"] = -3
    with pytest.raises(ConfigError, match="^projection.epochs: -3 is out of range; must be at least 0$"):
        apply_mapping(Config(), stored)


def test_the_edges_of_each_range_are_allowed():
    c = apply_overrides(Config(), [
        "projection.epochs=0", "negtune.epochs=0", "projection.batch_size=1", "synthesis.strength=1",
        "neglabel.percentile=0", "neglabel.keep_ratio=1", "neglabel.ngroups=1", "synthesis.step_size=0",
        "finetune.synthetic_images=1", "finetune.keep_states=1", "projection.eta_min=0", "images.max_aspect=1"])
    assert (c.projection.epochs, c.synthesis.strength, c.neglabel.keep_ratio, c.images.max_aspect) == (0, 1.0, 1.0, 1.0)
    c = apply_overrides(c, ["neglabel.percentile=100", "synthesis.step_size=none", "finetune.synthetic_images=none",
                            "images.max_file_mb=none", "images.max_pixels=none", "images.max_aspect=none"])
    assert c.synthesis.step_size is None and c.finetune.synthetic_images is None  # None: the generator's own; all


def test_choices_come_from_the_annotations_and_every_copy_is_derived_from_them():
    assert CHOICES["synthesis.loss"] == ("squared", "hinge", "energy")
    for key, choices in CHOICES.items():  # the first choice is the default
        section, name = key.split(".")
        assert getattr(getattr(Config(), section), name) == choices[0]
    assert scorers.COMBINATIONS is CHOICES["finetune.combination"]
    assert suites.SUITE_CHOICES is CHOICES["models.suite"]
    assert classifier.RESIZES is CHOICES["models.classifier_resize"]


def _tiny_generator():
    from synood.models import Suite

    return Suite.from_config(ModelsConfig(suite="tiny", device="cpu")).generator


GUARDED = [  # (what is built in code without a Config, the bad choice it is given, the one line that refuses it)
    ("Projection(input=)", lambda: finetune.Projection(8, input="scaled"),
     "projection.input: 'scaled' is not allowed; choose one of raw, unit"),
    ("initial_negatives", lambda: finetune.initial_negatives(torch.ones(2, 4), "scaled"),
     "negtune.parameter: 'scaled' is not allowed; choose one of raw, unit"),
    ("Trainer(projection)", lambda: finetune.Trainer("projection", 4, lambda i: (torch.zeros(()), 0), [], 1, 2, 0,
                                                     "sideways"),
     "projection.schedule: 'sideways' is not allowed; choose one of epoch, batch"),
    ("Trainer(negatives)", lambda: finetune.Trainer("negatives", 4, lambda i: (torch.zeros(()), 0), [], 1, 2, 0,
                                                    "sideways"),
     "negtune.schedule: 'sideways' is not allowed; choose one of epoch, batch"),
    ("ood_loss", lambda: synthesis.ood_loss(torch.zeros(1, 3), "bogus"),
     "synthesis.loss: 'bogus' is not allowed; choose one of squared, hinge, energy"),
    ("noise_steps", lambda: next(synthesis.noise_steps(lambda z: z, torch.zeros(3, 2, 2), lambda x: x.flatten(1),
                                                       loss="bogus")),
     "synthesis.loss: 'bogus' is not allowed; choose one of squared, hinge, energy"),
    ("InpaintGenerator.prepare", lambda: _tiny_generator().prepare(Image.new("RGB", (8, 8)),
                                                                   GenerationSettings("p", gradient="exact")),
     "synthesis.gradient: 'exact' is not allowed; choose one of skip, full"),
    ("Suite(classifier_resize=)", lambda: suites.Suite(suites.SUITES["tiny"], classifier_resize="nearest"),
     "models.classifier_resize: 'nearest' is not allowed; choose one of antialias, plain"),
    ("ImageNetClassifier.resized", lambda: classifier.load(
        suites.ComponentSpec("classifier", "torchvision", classifier.TINY_RESNET), torch.device("cpu"), "float32",
    ).resized("nearest"), "models.classifier_resize: 'nearest' is not allowed; choose one of antialias, plain"),
    ("SynOOD(combination)", lambda: scorers.SynOOD(SimpleNamespace(projection=None), "all"),
     "finetune.combination: 'all' is not allowed; choose one of both, projection, negatives, none"),
]


@pytest.mark.parametrize("build, message", [row[1:] for row in GUARDED], ids=[row[0] for row in GUARDED])
def test_library_objects_built_without_a_config_refuse_a_bad_choice_in_the_same_one_line(build, message):
    """Each guard applies its config key's rule (config.check): no other wording, no other copy of the choices."""
    with pytest.raises(ConfigError) as refused:
        build()
    assert str(refused.value) == message and "\n" not in message
    assert isinstance(refused.value, ValueError)  # callers that catch ValueError still do


def test_check_applies_a_keys_rule_as_setting_it_does():
    check("synthesis.loss", "hinge")
    check("finetune.synthetic_images", None)
    with pytest.raises(ConfigError, match="^projection.epochs: -3 is out of range; must be at least 0$"):
        check("projection.epochs", -3)


def test_labelled_choices_name_exactly_the_allowed_values():
    assert labelled("synthesis.gradient", {"full": "F", "skip": "S"}) == [("S", "skip"), ("F", "full")]
    with pytest.raises(ValueError, match="its choices are skip, full"):
        labelled("synthesis.gradient", {"skip": "S"})


@pytest.mark.parametrize("setting, message", [
    ("synthesis.loss=bogus", "synthesis.loss: 'bogus' is not allowed; choose one of squared, hinge, energy"),
    ("projection.epochs=-3", "projection.epochs: -3 is out of range; must be at least 0"),
])
def test_the_cli_refuses_a_bad_value_in_one_line(setting, message):
    result = subprocess.run([SYNOOD, "config", "--set", setting], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 2
    assert result.stderr == f"synood: error: {message}\n" and result.stdout == ""
