"""Stages 2 and 3 on a constructed feature problem with a known answer, exact resume, and the detector file."""
import json

import pytest
import torch
import torch.nn.functional as F

from synood.records import checkpoint
from synood.method import finetune, metrics, scores
from synood.method.scorers import ScoreInputs, SynOOD
from synood.pipelines import training
from synood.config import Config
from synood.data.features import image_features, read_cache, cache_folder
from synood.records.runs import RunError, RunStore

unit = lambda x: F.normalize(x, dim=-1)  # noqa: E731


def tuned_score(tuned, features, id_text, negatives, neglabel, combination="both"):
    """S(x) of the registry's SynOOD scorer built from `tuned` (what TunedDetector.score gave before it moved)."""
    return SynOOD(tuned, combination).score(ScoreInputs(id_text, negatives, neglabel, features))


IMAGE_NORM, TEXT_NORM = 10.0, 8.0  # raw embeddings are far from unit norm, as CLIP's are


class Toy:
    """ID images near their class text; near-boundary images = an ID class plus one of 8 "concepts" no ID
    label covers. Three negatives sit loosely (cosine 0.5) around each concept, 76 elsewhere, so NegLabel
    before tuning barely tells the two apart; pulling images and negatives together should. Image and
    negative features are RAW: unit directions times a norm around IMAGE_NORM and TEXT_NORM."""

    D, C, K = 32, 10, 8

    def __init__(self, seed: int = 0):
        g = self.g = torch.Generator().manual_seed(seed)
        self.id_text = unit(torch.randn(self.C, self.D, generator=g))
        self.concepts = unit(torch.randn(self.K, self.D, generator=g))
        near = 0.5
        close = unit(near * self.concepts.repeat_interleave(3, 0)
                     + (1 - near ** 2) ** 0.5 * unit(torch.randn(3 * self.K, self.D, generator=g)))
        self.negatives = TEXT_NORM * torch.cat([close, unit(torch.randn(76, self.D, generator=g))])
        id_train, self.labels = self.id_images(256)
        self.problem = finetune.Problem.build(id_train, self.labels, self.boundary(256), self.id_text, self.negatives)
        self.test_id, _ = self.id_images(400)
        self.test_ood = self.boundary(400)

    def norms(self, n):
        return IMAGE_NORM * (0.8 + 0.4 * torch.rand(n, 1, generator=self.g))

    def id_images(self, n):
        c = torch.randint(self.C, (n,), generator=self.g)
        return self.norms(n) * unit(self.id_text[c] + 0.1 * torch.randn(n, self.D, generator=self.g)), c

    def boundary(self, n):
        c = torch.randint(self.C, (n,), generator=self.g)
        k = torch.randint(self.K, (n,), generator=self.g)
        direction = unit(self.id_text[c] + 0.5 * self.concepts[k] + 0.1 * torch.randn(n, self.D, generator=self.g))
        return self.norms(n) * direction

    def auroc(self, tuned, config, combination="both"):
        s = lambda x: tuned_score(tuned, x, self.id_text, unit(self.negatives), config.neglabel, combination)  # noqa: E731
        return metrics.auroc(s(self.test_id), s(self.test_ood))


def toy_config(**changes) -> Config:
    config = Config()
    config.neglabel.ngroups = 10
    config.projection.epochs, config.projection.batch_size, config.projection.lr = 20, 64, 1e-2
    config.negtune.epochs, config.negtune.batch_size = 10, 64
    config.negtune.lr = 0.1 * TEXT_NORM ** 2  # raw parameters turn 1/|t|^2 as fast: the same step as 0.1 on unit ones
    for key, value in changes.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


class Crash(Exception):
    pass


def crash_after_epoch(problem, config, state_dir, at: tuple[str, int]) -> None:
    """Train until the state of epoch `at` = (stage, epoch) is on disk, then stop as a kill would leave it."""
    def crash(epoch):
        if (epoch.stage, epoch.epoch) == at:
            raise Crash
    with pytest.raises(Crash):
        training.train(problem, config, state_dir, on_epoch=crash)


@pytest.fixture(scope="module")
def toy():
    return Toy()


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    history = []
    tuned = training.train(toy.problem, toy_config(), tmp_path_factory.mktemp("state"), on_epoch=history.append)
    return tuned, history


def _residual_block(projection, f):
    """normalize(f + ReLU(LayerNorm(W f + b))) by hand (LayerNorm's affine starts at 1 and 0)."""
    z = f @ projection.linear.weight.T + projection.linear.bias
    z = (z - z.mean(dim=1, keepdim=True)) / torch.sqrt(z.var(dim=1, unbiased=False, keepdim=True) + 1e-5)
    return (f + torch.relu(z)) / (f + torch.relu(z)).norm(dim=1, keepdim=True)


def test_projection_is_the_papers_residual_block_on_raw_embeddings():
    projection = finetune.new_projection(512, seed=0)
    assert projection.input == "raw"  # the authors' code feeds encode_image's raw output
    assert sum(p.numel() for p in projection.parameters()) == 512 * 512 + 512 + 2 * 512  # 263,680
    f = 11.0 * unit(torch.randn(4, 512))  # the norm of a CLIP ViT-B/16 image embedding, roughly
    torch.testing.assert_close(projection(f), _residual_block(projection, f))
    torch.testing.assert_close(finetune.new_projection(512, seed=0).linear.weight, projection.linear.weight)
    on_unit = finetune.new_projection(512, seed=0, input="unit")
    torch.testing.assert_close(on_unit(f), _residual_block(on_unit, unit(f)))  # normalised first
    assert not torch.allclose(projection(f), on_unit(f), atol=1e-3)  # the two conventions are different functions
    with pytest.raises(ValueError, match="projection.input: 'scaled' is not allowed; choose one of raw, unit"):
        finetune.Projection(8, "scaled")


def test_one_sgd_step_on_a_raw_negative_follows_the_formula():
    """Eq. 14 with a raw parameter t, scored by cosine: dL/dt = (I - u u^T) dL/du / |t| with u = t / |t|,
    so SGD's first step (momentum buffer = gradient) is t - lr (dL/dt + wd t), and it turns u by ~lr / |t|^2."""
    g = torch.Generator().manual_seed(1)
    images = 10.0 * unit(torch.randn(6, 16, generator=g, dtype=torch.float64))
    raw = 7.0 * unit(torch.randn(3, 16, generator=g, dtype=torch.float64))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    config = toy_config(negtune__lr=1e-3, negtune__epochs=1, negtune__batch_size=6).negtune  # small steps: angle ~ step
    problem = finetune.Problem(images, torch.zeros(0, dtype=torch.long), images, labels, unit(raw), torch.arange(3), raw)
    stepped = {}
    for parameter in ("raw", "unit"):
        t = torch.nn.Parameter(finetune.initial_negatives(raw, parameter))
        start = t.detach().clone()
        trainer = finetune.negatives_trainer(problem, t, config)
        trainer.run_epoch(1)
        u = unit(start).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(100 * unit(images) @ u.T, labels)
        (dl_du,) = torch.autograd.grad(loss, u)
        n = start.norm(dim=1, keepdim=True)
        dl_dt = (dl_du - (dl_du * unit(start)).sum(1, keepdim=True) * unit(start)) / n
        lr = finetune.cosine_lr(config.lr, 0, 1, config.eta_min)
        torch.testing.assert_close(t.detach(), start - lr * (dl_dt + config.weight_decay * start))
        along = (t.detach() * unit(start)).sum(1)
        stepped[parameter] = torch.atan2((t.detach() - along[:, None] * unit(start)).norm(dim=1), along)
    ratio = stepped["unit"] / stepped["raw"]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 7.0 ** 2), rtol=0.02, atol=0)


def test_pairing_takes_the_most_similar_negative():
    synthetic = unit(torch.randn(50, 16))
    negatives = unit(torch.randn(30, 16))
    index, similarity = finetune.pair_negatives(synthetic, negatives)
    for i in range(50):
        sims = [float(synthetic[i] @ n) for n in negatives]
        assert index[i] == max(range(30), key=sims.__getitem__)
        assert similarity[i] == pytest.approx(max(sims), abs=1e-6)


def _cross_entropy(logits, labels):
    """mean_i -log(exp(z_i,y_i) / sum_j exp(z_i,j)), written out."""
    picked = logits[torch.arange(len(labels)), labels]
    return (torch.log(torch.exp(logits).sum(dim=1)) - picked).mean()


def close(actual, expected):
    """Equal up to float32 rounding: stage 3's cosine computes in float32 (`finetune.cosine`)."""
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)


def _loss_inputs():
    g = torch.Generator().manual_seed(5)
    raw = lambda n, norm: norm * unit(torch.randn(n, 8, generator=g, dtype=torch.float64))  # noqa: E731
    projection = finetune.new_projection(8, seed=2).double()
    return projection, raw(6, 10.0), unit(torch.randn(4, 8, generator=g, dtype=torch.float64)), raw(3, 7.0)


def test_projection_loss_is_stage_2s_cross_entropy_by_hand():
    """METHOD.md section 4: CE over [4 ID labels; 3 negatives] of 100 * cos(delta(f), class text)."""
    projection, f, id_text, negatives = _loss_inputs()
    labels = torch.tensor([0, 3, 4, 6, 1, 5])
    classes = torch.cat([id_text, negatives])
    by_hand = 100 * _residual_block(projection, f) @ (classes / classes.norm(dim=1, keepdim=True)).T
    loss, logits = finetune.projection_loss(projection, f, labels, id_text, negatives, 100.0)
    close(logits, by_hand)
    close(loss, _cross_entropy(by_hand, labels))


def test_negatives_loss_is_eq_14_by_hand():
    """METHOD.md section 5, eq. 14: CE over the learnable negatives only of 100 * cos(f, t), on raw f and t."""
    _, f, _, negatives = _loss_inputs()
    paired = torch.tensor([2, 0, 1, 1, 2, 0])
    by_hand = 100 * (f / f.norm(dim=1, keepdim=True)) @ (negatives / negatives.norm(dim=1, keepdim=True)).T
    loss, logits = finetune.negatives_loss(f, negatives, paired, 100.0)
    close(logits, by_hand)
    close(loss, _cross_entropy(by_hand, paired))


def test_joint_loss_is_stage_2s_plus_stage_3s_on_projected_synthetic_images():
    """The joint ablation: stage 2's CE on every image plus eq. 14's CE on the projected synthetic ones only."""
    projection, f, id_text, negatives = _loss_inputs()
    labels = torch.tensor([0, 3, 4, 6, 1, 5])  # 4 + negative index for the synthetic images (4, 6, 5)
    synthetic = torch.tensor([False, False, True, True, False, True])
    projected, t = _residual_block(projection, f), negatives / negatives.norm(dim=1, keepdim=True)
    stage2 = 100 * projected @ torch.cat([id_text, t]).T
    stage3 = 50 * projected[synthetic] @ t.T
    loss, logits = finetune.joint_loss(projection, f, labels, synthetic, id_text, negatives, 100.0, 50.0)
    close(logits, stage2)
    close(loss, _cross_entropy(stage2, labels) + _cross_entropy(stage3, labels[synthetic] - 4))
    only_id, _ = finetune.joint_loss(projection, f, labels, torch.zeros(6, dtype=torch.bool), id_text, negatives,
                                     100.0, 50.0)
    close(only_id, _cross_entropy(stage2, labels))  # no synthetic image: stage 2's term alone


def test_generation_and_training_pair_with_the_same_function():
    """The manifest's negative label is the one training pairs the image with: both call pair_negatives."""
    from synood.pipelines import generation

    assert generation.pair_negatives is finetune.pair_negatives


def test_problem_keeps_only_the_paired_negatives(toy):
    p = toy.problem
    nearest, _ = finetune.pair_negatives(p.synthetic, toy.negatives)
    assert torch.equal(p.used[p.paired], nearest)
    assert torch.equal(p.used, torch.unique(nearest)) and len(p.used) < len(toy.negatives)
    assert torch.equal(p.negative_text, toy.negatives[p.used])


def test_cosine_schedule_and_seeded_batches():
    assert finetune.cosine_lr(1.0, 0, 10) == 1.0
    assert finetune.cosine_lr(1.0, 5, 10) == pytest.approx(0.5)
    assert finetune.cosine_lr(1.0, 10, 10) == pytest.approx(0.0)
    assert finetune.cosine_lr(1.0, 10, 10, eta_min=1e-5) == pytest.approx(1e-5)
    first = [b.tolist() for b in finetune.batches(10, 4, seed=3, epoch=2)]
    assert [b.tolist() for b in finetune.batches(10, 4, seed=3, epoch=2)] == first
    assert sorted(sum(first, [])) == list(range(10)) and [len(b) for b in first] == [4, 4, 2]
    assert [b.tolist() for b in finetune.batches(10, 4, seed=3, epoch=3)] != first


@pytest.mark.parametrize("schedule", ["epoch", "batch"])
def test_learning_rates_follow_torchs_cosine_annealing(toy, tmp_path, schedule):
    """The authors step CosineAnnealingLR(T_max=epochs, eta_min) once per epoch; `batch` steps it per batch."""
    config = toy_config(projection__schedule=schedule, projection__epochs=4, negtune__epochs=0)
    seen = []
    trainer = finetune.projection_trainer(toy.problem, finetune.new_projection(32, 0), config.projection)
    optimizer = trainer.optimizers[0]
    step = optimizer.step
    optimizer.step = lambda *a, **k: (seen.append(optimizer.param_groups[0]["lr"]), step(*a, **k))[1]
    for epoch in range(1, 5):
        trainer.run_epoch(epoch)
    reference = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.projection.lr)
    per_epoch = schedule == "epoch"
    total = 4 if per_epoch else 4 * trainer.steps_per_epoch
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(reference, total, config.projection.eta_min)
    expected = []
    for epoch in range(4):
        for _ in range(trainer.steps_per_epoch):
            expected.append(reference.param_groups[0]["lr"])
            reference.step()  # no gradient: changes nothing, keeps the scheduler's step-order check quiet
            if not per_epoch:
                annealing.step()
        if per_epoch:
            annealing.step()
    assert seen == pytest.approx(expected, rel=1e-9)
    assert len(set(seen)) == (4 if per_epoch else len(seen))


def test_resume_is_exact_under_the_per_batch_schedule_too(toy, tmp_path):
    config = toy_config(projection__schedule="batch", negtune__schedule="batch", projection__epochs=4, negtune__epochs=3)
    whole = training.train(toy.problem, config, tmp_path / "whole")

    crash_after_epoch(toy.problem, config, tmp_path / "crashed", ("projection", 2))
    resumed = training.train(toy.problem, config, tmp_path / "crashed")
    for name, tensor in whole.tensors().items():
        assert torch.equal(resumed.tensors()[name], tensor), name


def test_both_stages_reduce_their_loss_and_raise_auroc(toy, trained):
    tuned, history = trained
    config = toy_config()
    for stage in ("projection", "negatives"):
        losses = [h.loss for h in history if h.stage == stage]
        assert len(losses) == {"projection": 20, "negatives": 10}[stage]
        assert losses[-1] < 0.5 * losses[0], (stage, losses)
    before = toy.auroc(checkpoint.TunedDetector(None, toy.problem.used, None), config)
    after = {c: toy.auroc(tuned, config, c) for c in ("projection", "negatives", "both")}
    assert toy.auroc(tuned, config, "none") == before  # "none" is plain NegLabel
    assert after["projection"] > before + 0.03 and after["negatives"] > before + 0.01, (before, after)
    assert after["both"] > before + 0.03, (before, after)


def test_none_combination_is_neglabel(toy, trained):
    tuned, _ = trained
    s = tuned_score(tuned, toy.test_id, toy.id_text, unit(toy.negatives), toy_config().neglabel, "none")
    expected, _ = scores.neglabel_score(unit(toy.test_id).double(), toy.id_text.double(), unit(toy.negatives).double(), 10)
    torch.testing.assert_close(s, expected)


def test_tuned_negatives_replace_only_the_paired_rows(toy, trained):
    tuned, _ = trained
    base = unit(toy.negatives)
    full = SynOOD(tuned).negatives(base)
    others = torch.ones(len(base), dtype=torch.bool)
    others[toy.problem.used] = False
    assert torch.equal(full[others], base[others])
    assert not torch.allclose(full[toy.problem.used], base[toy.problem.used])
    torch.testing.assert_close(full.norm(dim=1), torch.ones(len(full)))


@pytest.mark.parametrize("changes", [{"negtune__joint": True}, {"negtune__use_projection": True}])
def test_ablations_train(toy, tmp_path, changes):
    config = toy_config(**changes)
    history = []
    tuned = training.train(toy.problem, config, tmp_path, on_epoch=history.append)
    stages = [h.stage for h in history]
    assert stages == (["joint"] * 20 if "negtune__joint" in changes else ["projection"] * 20 + ["negatives"] * 10)
    assert history[-1].loss < history[0].loss
    assert tuned.projection is not None and tuned.negative_features is not None


def test_a_stage_with_zero_epochs_is_left_out(toy, tmp_path):
    tuned = training.train(toy.problem, toy_config(negtune__epochs=0), tmp_path)
    assert tuned.projection is not None and tuned.negative_features is None
    with pytest.raises(training.TrainingError, match="nothing to train"):
        training.train(toy.problem, toy_config(negtune__epochs=0, projection__epochs=0), tmp_path / "x")


@pytest.mark.parametrize("crash_after", [("projection", 7), ("projection", 20), ("negatives", 4)])
def test_resume_after_a_crash_equals_an_uninterrupted_run(toy, trained, tmp_path, crash_after):
    crash_after_epoch(toy.problem, toy_config(), tmp_path, crash_after)
    replayed = []
    resumed = training.train(toy.problem, toy_config(), tmp_path, on_epoch=replayed.append)
    uninterrupted, history = trained
    assert [e.as_dict() for e in replayed] == [e.as_dict() for e in history]  # recorded epochs are told again first
    for name, tensor in uninterrupted.tensors().items():
        assert torch.equal(resumed.tensors()[name], tensor), name
    assert len(training.states(tmp_path)) == 2  # finetune.keep_states


def test_a_state_saved_before_schedule_floors_resumes_on_the_configs_schedule(toy, trained, tmp_path):
    """Optimiser groups saved by an older version lack "eta_min": the floor comes from the run's config."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    crash_after_epoch(toy.problem, toy_config(), tmp_path, ("projection", 7))
    newest = training.states(tmp_path)[-1]
    with safe_open(str(newest), "pt") as handle:
        metadata = handle.metadata()
    groups = json.loads(metadata["groups"])
    for group in (g for optimizer in groups for g in optimizer):
        del group["eta_min"]
    save_file(load_file(str(newest)), str(newest), metadata={**metadata, "groups": json.dumps(groups)})
    resumed = training.train(toy.problem, toy_config(), tmp_path)
    for name, tensor in trained[0].tensors().items():
        assert torch.equal(resumed.tensors()[name], tensor), name


def test_a_damaged_newest_state_falls_back_to_the_one_before(toy, trained, tmp_path):
    crash_after_epoch(toy.problem, toy_config(), tmp_path, ("negatives", 3))
    newest = training.states(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a torn write (atomic writes prevent it; a disk fault may not)
    resumed = training.train(toy.problem, toy_config(), tmp_path)
    for name, tensor in trained[0].tensors().items():
        assert torch.equal(resumed.tensors()[name], tensor), name


def test_stop_returns_none_and_resume_finishes(toy, trained, tmp_path):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 30  # some batches into the projection stage
    assert training.train(toy.problem, toy_config(), tmp_path, stop=stop) is None
    resumed = training.train(toy.problem, toy_config(), tmp_path)
    assert torch.equal(resumed.tensors()["negatives.features"], trained[0].tensors()["negatives.features"])


def test_detector_file_round_trip_and_checks(toy, trained, tmp_path):
    tuned, _ = trained
    tuned.meta = {"encoder": "enc-1", "negatives_digest": checkpoint.negatives_digest(["a", "b"]),
                  "negatives_count": 2}
    path = tmp_path / "detector.safetensors"
    checkpoint.save_detector(path, tuned)
    assert path.stat().st_size < 200_000  # projection of a 32-d toy plus the tuned rows
    loaded = checkpoint.load_detector(path)
    config = toy_config()
    assert loaded.projection.input == "raw"
    torch.testing.assert_close(tuned_score(loaded, toy.test_ood, toy.id_text, unit(toy.negatives), config.neglabel),
                               tuned_score(tuned, toy.test_ood, toy.id_text, unit(toy.negatives), config.neglabel))
    loaded.check("enc-1", ["a", "b"])
    with pytest.raises(checkpoint.CheckpointError, match="tuned on features of 'enc-1'"):
        loaded.check("enc-2", ["a", "b"])
    with pytest.raises(checkpoint.CheckpointError, match="another negative-label list"):
        loaded.check("enc-1", ["a", "c"])
    with pytest.raises(ValueError, match="finetune.combination: 'everything' is not allowed; choose one of "):
        tuned_score(loaded, toy.test_ood, toy.id_text, unit(toy.negatives), config.neglabel, "everything")


def test_a_detector_file_without_the_input_key_projects_unit_features(toy, trained, tmp_path):
    """Files written before raw embeddings were trained on unit-norm features: they still score raw input right."""
    from safetensors.torch import save_file

    tuned, _ = trained
    path = tmp_path / "old.safetensors"
    save_file(tuned.tensors(), str(path), metadata={"format": checkpoint.FORMAT, "meta": "{}"})
    old = checkpoint.load_detector(path)
    assert old.projection.input == "unit"
    torch.testing.assert_close(SynOOD(old).project(toy.test_ood), SynOOD(old).project(unit(toy.test_ood)))


def test_damaged_or_foreign_detector_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(checkpoint.CheckpointError, match="no such detector file"):
        checkpoint.load_detector(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable safetensors file|damaged"):
        checkpoint.load_detector(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(checkpoint.CheckpointError, match="not a synood-detector/1 file"):
        checkpoint.load_detector(tmp_path / "other.safetensors")
    save_file({"negatives.index": torch.arange(3), "negatives.features": torch.zeros(2, 4)},
              str(tmp_path / "bad.safetensors"), metadata={"format": checkpoint.FORMAT, "meta": "{}"})
    with pytest.raises(checkpoint.CheckpointError, match="2 tuned features for 3 indices"):
        checkpoint.load_detector(tmp_path / "bad.safetensors")


# --- the feature cache ------------------------------------------------------------------------------------

class CountingEncoder:
    """A deterministic stand-in encoder (mean colour + 1, 3-d, far from unit norm) that counts what it encodes."""

    identity, embed_dim = "counting-encoder/1", 3

    def __init__(self):
        self.encoded = 0

    def preprocess(self, pictures):
        return torch.stack([torch.tensor(list(p.resize((1, 1)).getpixel((0, 0))), dtype=torch.float32)
                            for p in pictures])

    def encode_image(self, pixels, normalize=True):
        self.encoded += len(pixels)
        return unit(pixels + 1) if normalize else pixels + 1


def write_images(folder, colours):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(colours):
        paths.append(folder / f"{i}.png")
        Image.new("RGB", (8, 8), colour).save(paths[-1])
    return paths


def test_feature_cache_encodes_each_content_once(tmp_path):
    paths = write_images(tmp_path / "a", [(255, 0, 0), (0, 255, 0), (255, 0, 0)])  # 0 and 2: same bytes
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    encoder = CountingEncoder()
    first = image_features(encoder, [*paths, tmp_path / "a" / "broken.png", tmp_path / "missing.png"],
                           root=tmp_path / "cache")
    assert encoder.encoded == 2 and first.paths == paths
    assert torch.equal(first.features[0], first.features[2])
    assert torch.equal(first.features[0], torch.tensor([256.0, 1.0, 1.0]))  # raw (colour + 1): the cache keeps the norm
    assert torch.equal(first.unit, unit(first.features))
    assert len(first.problems) == 2
    assert any("broken.png: not an image" in p for p in first.problems)
    assert any("missing.png: cannot read" in p for p in first.problems)
    copy = tmp_path / "b" / "renamed.png"
    copy.parent.mkdir()
    copy.write_bytes(paths[1].read_bytes())
    again = image_features(encoder, [copy, *paths], root=tmp_path / "cache")
    assert encoder.encoded == 2  # nothing new: the cache is keyed by content, not by path
    assert torch.equal(again.features[0], first.features[1])
    other = image_features(type("Other", (CountingEncoder,), {"identity": "other/1"})(), paths, root=tmp_path / "cache")
    assert other.features.shape == (3, 3)  # another identity has its own cache


def test_features_cached_before_raw_embeddings_are_encoded_again_not_misread(tmp_path):
    import hashlib

    from synood.data.features import content_hash, write_chunk

    paths = write_images(tmp_path / "a", [(10, 20, 30)])
    encoder = CountingEncoder()
    old_folder = tmp_path / "cache" / "image-features" / hashlib.sha256(encoder.identity.encode()).hexdigest()[:32]
    write_chunk(old_folder, [content_hash(paths[0])], unit(torch.tensor([[11.0, 21.0, 31.0]])), encoder.identity)
    found = image_features(encoder, paths, root=tmp_path / "cache")  # the folder of unit-norm features is not read
    assert encoder.encoded == 1 and torch.equal(found.features, torch.tensor([[11.0, 21.0, 31.0]]))


def test_a_corrupted_cache_chunk_is_detected_and_rebuilt(tmp_path):
    paths = write_images(tmp_path / "a", [(10, 20, 30), (40, 50, 60)])
    encoder = CountingEncoder()
    good = image_features(encoder, paths, root=tmp_path / "cache")
    (chunk,) = cache_folder(encoder.identity, tmp_path / "cache").glob("*.safetensors")
    chunk.write_bytes(chunk.read_bytes()[:40])
    assert read_cache(chunk.parent) == {} and not chunk.exists()  # detected and removed
    rebuilt = image_features(encoder, paths, root=tmp_path / "cache")
    assert encoder.encoded == 4 and torch.equal(rebuilt.features, good.features)


# --- the run database -------------------------------------------------------------------------------------

def test_run_store_records_and_survives_reopening(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run = store.create("finetune", {"projection": {"lr": 0.001}}, {"generation": "/g"})
    store.log_epoch(run.id, "projection", 1, {"loss": 2.0, "accuracy": 0.1})
    store.log_epoch(run.id, "projection", 1, {"loss": 1.5, "accuracy": 0.2})  # a resumed run re-records: replaced
    store.log_epoch(run.id, "negatives", 1, {"loss": 0.5, "accuracy": 0.9})
    store.update(run.id, status="completed", summary={"loss": 0.5}, artifacts={"detector": "/d.safetensors"})
    store.update(run.id, summary={"auroc": 90.0})
    reopened = RunStore(tmp_path / "runs.sqlite")
    got = reopened.get(run.id)
    assert (got.status, got.config, got.inputs) == ("completed", {"projection": {"lr": 0.001}}, {"generation": "/g"})
    assert got.summary == {"loss": 0.5, "auroc": 90.0} and got.artifacts == {"detector": "/d.safetensors"}
    assert [(e["stage"], e["epoch"], e["loss"]) for e in reopened.epochs(run.id)] == [
        ("projection", 1, 1.5), ("negatives", 1, 0.5)]
    assert [r.id for r in reopened.list("finetune")] == [run.id] and reopened.list("evaluate") == []
    with pytest.raises(RunError, match="no run 'nope'"):
        reopened.get("nope")
    with pytest.raises(RunError, match="unknown run kind"):
        reopened.create("dance", {}, {})


def test_a_running_run_whose_process_is_gone_reads_interrupted(tmp_path):
    import subprocess
    import sys

    store = RunStore(tmp_path / "runs.sqlite")
    code = (f"from synood.records.runs import RunStore; print(RunStore({str(tmp_path / 'runs.sqlite')!r})"
            ".create('finetune', {}, {}).id)")
    run_id = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert store.get(run_id).status == "interrupted"
    mine = store.create("finetune", {}, {})
    assert store.get(mine.id).status == "running"
    store.update(run_id, status="running", claim=True)  # resumed by this process
    assert store.get(run_id).status == "running"


def test_execute_records_epochs_status_and_the_detector(toy, tmp_path):
    config = toy_config(projection__epochs=2, negtune__epochs=2)
    config.paths.home = str(tmp_path)
    store = RunStore(tmp_path / "runs.sqlite")
    info = {"data_digest": "d1", "skipped": [], "encoder": "enc-1", "negatives_digest": "n1", "negatives_count": 100}
    data = training.TrainingData(toy.problem, info)
    run = training.start(store, config, tmp_path / "gen", data, "toy")
    done = training.execute(store, run, data, config)
    assert done.status == "completed" and [e["epoch"] for e in store.epochs(run.id)] == [1, 2, 1, 2]
    detector = checkpoint.load_detector(done.artifacts["detector"])
    assert detector.meta["run"] == run.id and detector.meta["config"]["projection"]["epochs"] == 2
    assert json.loads(json.dumps(done.summary))["epochs"] == 4
    for key, what in (("data_digest", "the training images"), ("encoder", "the image encoder"),
                      ("negatives_digest", "the mined negative labels")):
        changed = training.TrainingData(toy.problem, {**info, key: "other"})
        with pytest.raises(RunError, match=f"cannot continue: {what}.* changed since it started"):
            training.execute(store, run, changed, config)
    with pytest.raises(RunError, match="is completed: only stopped, failed or interrupted runs resume"):
        training.resume_config(store.get(run.id), str(tmp_path))
    store.update(run.id, status="stopped")
    assert training.resume_config(store.get(run.id), "/elsewhere").paths.home == "/elsewhere"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_matches_cpu_and_resumes_exactly(toy, trained, tmp_path):
    config = toy_config()
    on_gpu = training.train(toy.problem.to("cuda"), config, tmp_path / "a")
    for name, tensor in trained[0].tensors().items():
        torch.testing.assert_close(on_gpu.tensors()[name].float(), tensor.float(), atol=1e-5, rtol=0)

    crash_after_epoch(toy.problem.to("cuda"), config, tmp_path / "b", ("projection", 7))
    resumed = training.train(toy.problem.to("cuda"), config, tmp_path / "b")
    for name, tensor in on_gpu.tensors().items():
        assert torch.equal(resumed.tensors()[name], tensor), name


def test_recording_marks_a_raising_run_failed_or_interrupted(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    for error, status in ((ValueError("bad folder"), "failed"), (KeyboardInterrupt(), "interrupted")):
        run = store.create("evaluate", {}, {})
        with pytest.raises(type(error)), store.recording(run.id):
            raise error
        assert (store.get(run.id).status, store.get(run.id).message) == (status, f"{type(error).__name__}: {error}")
