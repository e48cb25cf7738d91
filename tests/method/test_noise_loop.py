"""The diffusion noise-optimisation loop on the tiny suite (SD2-inpainting's architecture, random weights):
it reproduces the stock pipeline, its two gradient modes are what they claim, and the loss falls."""
import numpy as np
import pytest
import torch
from PIL import Image

from synood.config import ModelsConfig, SynthesisConfig
from synood.pipelines.generation import iterations, prepare, source_energy
from synood.models import GenerationSettings, Suite
from synood.models.generator import InpaintGenerator
from synood.method.synthesis import ood_loss, optimise_noise

PROMPT = "A photo only remain bamboo, tourist, leaf, railing"
STEP = 100.0  # the tiny random classifier is nearly flat: a large step shows the descent within 3 iterations


@pytest.fixture(scope="module")
def suite() -> Suite:
    return Suite.from_config(ModelsConfig(suite="tiny", device="cpu"))


@pytest.fixture(scope="module")
def generator(suite) -> InpaintGenerator:
    return suite.generator


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray((np.random.default_rng(0).random((80, 96, 3)) * 255).astype(np.uint8))


def stock(generator: InpaintGenerator, image: Image.Image, seed: int) -> torch.Tensor:
    """The stock diffusers pipeline's output for the method's settings, as a (3, S, S) tensor."""
    size = generator.size
    return generator.pipe(
        prompt=PROMPT, image=image.convert("RGB").resize((size, size), Image.BICUBIC),
        mask_image=Image.new("L", (size, size), 255), height=size, width=size, strength=0.6, num_inference_steps=20,
        guidance_scale=8.0, generator=torch.Generator().manual_seed(seed), output_type="pt",
    ).images[0]


@pytest.mark.parametrize("gradient,checkpointing", [("skip", True), ("full", True), ("full", False)])
def test_loop_without_optimisation_equals_the_stock_pipeline(generator, image, gradient, checkpointing):
    canvas = generator.prepare(image, GenerationSettings(PROMPT, seed=3, gradient=gradient,
                                                         checkpointing=checkpointing))
    assert torch.equal(canvas.render(canvas.noise).detach(), stock(generator, image, seed=3))


def test_generate_is_the_stock_call(generator, image):
    canvas = generator.prepare(image, GenerationSettings(PROMPT, seed=5))
    rendered = np.asarray(generator.generate(image, PROMPT, seed=5), dtype=np.int16)
    ours = (canvas.render(canvas.noise).detach().permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(rendered - ours).max() <= 1  # the pipeline's PIL conversion rounds the same values


@pytest.mark.parametrize("gradient", ["skip", "full"])
def test_loss_falls_in_both_gradient_modes(suite, generator, image, gradient):
    settings = SynthesisConfig(iterations=4, step_size=STEP, gradient=gradient)
    canvas = prepare(generator, image, PROMPT, seed=0, settings=settings)
    losses = [step.loss for step in iterations(generator, suite.classifier, canvas, settings)]
    assert len(losses) == 4 and all(b < a for a, b in zip(losses, losses[1:])), losses


def test_skip_gradient_applies_dl_dz0_to_the_noise(suite, generator, image):
    canvas = generator.prepare(image, GenerationSettings(PROMPT, seed=1, gradient="skip"))
    rendered = []
    history = optimise_noise(lambda n: rendered.append(n.detach().clone()) or canvas.render(n), canvas.noise,
                             suite.classifier.logits, iterations=2, step_size=STEP)
    with torch.no_grad():
        z0 = canvas.denoise(canvas.noise) / canvas.vae.config.scaling_factor  # the decoder's input, as the reference
    z0.requires_grad_(True)
    image0 = (canvas.vae.decode(z0, return_dict=False)[0][0] / 2 + 0.5).clamp(0, 1)
    (grad,) = torch.autograd.grad(ood_loss(suite.classifier.logits(image0[None])), z0)
    assert torch.equal(image0.detach(), history[0].image)
    assert grad.abs().max() > 0
    assert torch.allclose(rendered[1], canvas.noise - STEP * grad, atol=1e-6)


def test_full_gradient_matches_finite_differences(suite, generator, image):
    canvas = generator.prepare(image, GenerationSettings(PROMPT, seed=2, gradient="full", checkpointing=True))

    def loss(noise):
        return ood_loss(suite.classifier.logits(canvas.render(noise)[None]))

    noise = canvas.noise.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(noise), noise)
    plain = generator.prepare(image, GenerationSettings(PROMPT, seed=2, gradient="full", checkpointing=False))
    noise2 = plain.noise.clone().requires_grad_(True)
    (grad2,) = torch.autograd.grad(ood_loss(suite.classifier.logits(plain.render(noise2)[None])), noise2)
    assert torch.allclose(grad, grad2, rtol=1e-4, atol=1e-9)  # checkpointing changes memory, not the gradient
    direction = grad / grad.norm()
    h = 0.5  # small against the noise (norm ~16), large against float32 rounding of the loss
    with torch.no_grad():
        slope = (loss(canvas.noise + h * direction) - loss(canvas.noise - h * direction)) / (2 * h)
    assert slope.item() == pytest.approx(grad.norm().item(), rel=0.03)


def test_callback_once_per_iteration_with_what_the_ui_needs(suite, generator, image):
    settings = SynthesisConfig(iterations=3, step_size=STEP)
    canvas = prepare(generator, image, PROMPT, seed=0, settings=settings)
    seen = []
    history = optimise_noise(canvas.render, canvas.noise, suite.classifier.logits, 3, STEP, callback=seen.append)
    assert seen == history and [s.index for s in seen] == [0, 1, 2]
    for step in seen:
        assert step.image.shape == (3, generator.size, generator.size) and not step.image.requires_grad
        assert np.isfinite([step.loss, step.energy, step.id_score]).all() and 0 <= step.id_score <= 1


def test_prompt_and_image_latents_are_computed_once(suite, generator, image):
    calls = {"text": 0, "encode": 0}
    hooks = [generator.pipe.text_encoder.register_forward_hook(lambda *a: calls.__setitem__("text", calls["text"] + 1)),
             generator.pipe.vae.encoder.register_forward_hook(lambda *a: calls.__setitem__("encode", calls["encode"] + 1))]
    try:
        settings = SynthesisConfig(iterations=3, step_size=STEP)
        canvas = prepare(generator, image, PROMPT, seed=0, settings=settings)
        before = dict(calls)
        list(iterations(generator, suite.classifier, canvas, settings))
    finally:
        for hook in hooks:
            hook.remove()
    assert before == {"text": 2, "encode": 2}  # prompt + empty prompt; image + all-zero masked image
    assert calls == before  # three iterations re-encode nothing


def test_deterministic_given_a_seed(suite, generator, image):
    settings = SynthesisConfig(iterations=2, step_size=STEP)
    runs = [list(iterations(generator, suite.classifier, prepare(generator, image, PROMPT, seed, settings), settings))
            for seed in (7, 7, 8)]
    assert torch.equal(runs[0][-1].image, runs[1][-1].image) and runs[0][-1].loss == runs[1][-1].loss
    assert not torch.equal(runs[0][-1].image, runs[2][-1].image)


def test_source_energy_is_the_resized_input(suite, generator, image):
    canvas = generator.prepare(image, GenerationSettings(PROMPT, seed=0))
    value, top = source_energy(suite.classifier, canvas)
    logits = suite.classifier.logits(canvas.source[None])
    assert value == pytest.approx(-torch.logsumexp(logits, -1).item(), abs=1e-5) and top == int(logits.argmax())


def test_bad_gradient_mode_is_refused(generator, image):
    with pytest.raises(ValueError, match="synthesis.gradient: 'exact' is not allowed; choose one of skip, full"):
        generator.prepare(image, GenerationSettings(PROMPT, gradient="exact"))
