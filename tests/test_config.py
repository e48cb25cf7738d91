"""The typed config tree: paper defaults, YAML files, overrides and clear errors."""
import pytest
import yaml

from synood.config import Config, ConfigError, apply_overrides, load_config


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
    with pytest.raises(ConfigError, match=f"{key}: expected one of"):
        apply_overrides(Config(), [f"{key}=sideways"])


def test_a_run_recorded_before_a_convention_existed_resumes_as_it_started():
    from synood.runs import Run, config_of

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
