"""The generator: Stable Diffusion 2 inpainting through diffusers, or a tiny random-weight twin.

The method regenerates the WHOLE image (mask all white, masked image zeros) from a partly noised
latent with 20 DDIM steps. `InpaintGenerator.generate` is that plain pipeline call. The stock call
runs under no_grad, so the noise optimisation uses `InpaintGenerator.prepare`: the same steps as
the pipeline written out once (prompt embeddings, image latents and mask latents computed once per
image), and an `InpaintCanvas` whose `render(noise)` denoises and decodes with the gradient the
chosen mode needs. With the seed's own noise it reproduces `generate` exactly.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.utils.checkpoint import checkpoint
if TYPE_CHECKING:  # diffusers' __init__ shows type checkers its placeholder classes: name the real modules
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint import StableDiffusionInpaintPipeline
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
else:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from synood.config import Gradient, check
from synood.runtime import pick_dtype, seeded_init
from synood.models import sources
from synood.models.interfaces import ComponentInfo, GenerationSettings, count_parameters
from synood.models.suites import GENERATOR_STEP_SIZES, ComponentSpec, download_snapshot

ARCHITECTURE = "Stable Diffusion inpainting (UNet 9-channel, VAE, CLIP text encoder)"
# What `load` needs from a hub repo: every config and tokenizer file (diffusers' offline check wants all
# of them) and the fp32 safetensors weights, not the multi-GB .ckpt, .bin and fp16 copies.
HUB_FILES = [
    "*.json", "*.txt", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
]
# Stable Diffusion 2's scheduler values (its scheduler_config.json), as a DDIM scheduler.
SD2_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
)


@dataclass(frozen=True)
class InpaintCanvas:
    """One image ready for noise optimisation: everything the denoising loop needs except the noise.

    render(noise) adds `noise` to the image latents at the first timestep (scheduler.add_noise),
    runs the DDIM loop with classifier-free guidance on the 9-channel UNet, and decodes. Gradient
    "skip": the loop runs without autograd and only the decode carries the gradient, handed
    straight to the noise: dL/dz0 is applied to eps, with z0 the decoder's input (the final latent
    divided by the VAE scaling factor), as in the reference code; "full":
    autograd through every UNet step, each step checkpointed when `checkpointing` is on.
    """

    source: torch.Tensor  # (3, S, S) the resized input in [0, 1]
    noise: torch.Tensor  # (1, 4, S/8, S/8) the seed's noise, the optimisation's start
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDIMScheduler  # a private copy: the loop never touches the pipeline's scheduler state
    timesteps: torch.Tensor
    prompt_embeds: torch.Tensor  # (2, 77, C): [negative (empty) prompt, prompt]
    image_latents: torch.Tensor  # (1, 4, S/8, S/8) z_in, already scaled
    mask: torch.Tensor  # (2, 1, S/8, S/8), all ones
    masked_image_latents: torch.Tensor  # (2, 4, S/8, S/8), latents of the all-zero masked image
    guidance: float
    gradient: Gradient = "skip"
    checkpointing: bool = True

    def render(self, noise: torch.Tensor) -> torch.Tensor:
        """(1, 4, h, w) noise -> (3, S, S) image in [0, 1], differentiable in `noise` per `gradient`."""
        scale = self.vae.config["scaling_factor"]
        if self.gradient == "skip":
            with torch.no_grad():
                latents = self.denoise(noise) / scale
            latents = latents + (noise - noise.detach())  # exactly z0 / scale, and dL/dnoise := dL/d(z0 / scale)
        else:
            latents = self.denoise(noise) / scale
        image = self.vae.decode(latents, return_dict=False)[0]
        return (image[0].float() / 2 + 0.5).clamp(0, 1)

    def denoise(self, noise: torch.Tensor) -> torch.Tensor:
        """z_T = add_noise(z_in, noise, t_start), then the DDIM steps -> z0 (the pipeline's loop)."""
        # diffusers annotates the timesteps of add_noise, scale_model_input and step as IntTensor or int; its own
        # pipelines pass these timestep tensors
        latents = self.scheduler.add_noise(self.image_latents, noise.to(self.image_latents.dtype),
                                           self.timesteps[:1])  # type: ignore[arg-type]
        for t in self.timesteps:
            if self.gradient == "full" and self.checkpointing:
                latents = checkpoint(self.step, latents, t, use_reentrant=False)
            else:
                latents = self.step(latents, t)
        return latents

    def step(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One guided UNet call and one DDIM update."""
        # the timestep tensor again (see denoise)
        model_input = self.scheduler.scale_model_input(torch.cat([latents] * 2), t)  # type: ignore[arg-type]
        model_input = torch.cat([model_input, self.mask, self.masked_image_latents], dim=1)
        noise_pred = self.unet(model_input, t, encoder_hidden_states=self.prompt_embeds, return_dict=False)[0]
        uncond, text = noise_pred.chunk(2)
        noise_pred = uncond + self.guidance * (text - uncond)
        return self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]  # type: ignore[arg-type]


class InpaintGenerator:
    """Generator (interfaces.Generator) around a StableDiffusionInpaintPipeline with a DDIM scheduler."""

    def __init__(self, pipe: StableDiffusionInpaintPipeline, info: ComponentInfo, device: torch.device):
        self.pipe, self.info, self.device = pipe, info, device
        self.size = pipe.unet.config.sample_size * pipe.vae_scale_factor  # 512 for SD2, 64 for tiny
        self.step_size = GENERATOR_STEP_SIZES["diffusers"]

    def generate(self, image: Image.Image, prompt: str, seed: int = 0, strength: float = 0.6,
                 steps: int = 20, guidance: float = 8.0) -> Image.Image:
        """One stock pipeline call with the method's settings: the whole image is repainted."""
        image = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        mask = Image.new("L", image.size, 255)
        generator = torch.Generator(self.device).manual_seed(seed)
        images, _ = self.pipe(
            prompt=prompt, image=image, mask_image=mask, height=self.size, width=self.size, strength=strength,
            num_inference_steps=steps, guidance_scale=guidance, generator=generator, return_dict=False,
        )
        return images[0]

    def prepare(self, image: Image.Image, settings: GenerationSettings = GenerationSettings()) -> InpaintCanvas:
        """The pipeline's preparation for `generate`'s inputs, drawing the seed's random numbers in
        the same order (image latents, noise, masked-image latents), stopped before the loop.
        `settings.context` is ignored: the labels reach the model through the prompt."""
        gradient, steps, strength, guidance = settings.gradient, settings.steps, settings.strength, settings.guidance
        check("synthesis.gradient", gradient)
        if guidance <= 1:
            raise ValueError("guidance must be above 1: the loop always uses classifier-free guidance")
        pipe = self.pipe
        image = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
        generator = torch.Generator(self.device).manual_seed(settings.seed)
        scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        with torch.no_grad():
            positive, negative = pipe.encode_prompt(settings.prompt, self.device, 1, True)
            scheduler.set_timesteps(steps, device=self.device)
            start = max(steps - min(int(steps * strength), steps), 0)  # pipe.get_timesteps, on our own scheduler
            timesteps = scheduler.timesteps[start * scheduler.order:]
            if len(timesteps) < 1:
                raise ValueError(f"strength {strength} with {steps} steps leaves no denoising step")
            pixels = pipe.image_processor.preprocess(image, height=self.size, width=self.size).to(torch.float32)
            _, noise, image_latents = pipe.prepare_latents(
                1, pipe.vae.config.latent_channels, self.size, self.size, positive.dtype, self.device, generator,
                image=pixels, timestep=timesteps[:1], is_strength_max=False, return_noise=True,
                return_image_latents=True,
            )
            mask_image = pipe.mask_processor.preprocess(Image.new("L", image.size, 255), height=self.size,
                                                        width=self.size)
            mask, masked_image_latents = pipe.prepare_mask_latents(
                mask_image, pixels * (mask_image < 0.5), 1, self.size, self.size, positive.dtype, self.device,
                generator, True,
            )
        return InpaintCanvas(
            source=(pixels[0] / 2 + 0.5).clamp(0, 1).to(self.device), noise=noise, unet=pipe.unet, vae=pipe.vae,
            scheduler=scheduler, timesteps=timesteps, prompt_embeds=torch.cat([negative, positive]),
            image_latents=image_latents, mask=mask, masked_image_latents=masked_image_latents,
            guidance=guidance, gradient=gradient, checkpointing=settings.checkpointing,
        )


def load(spec: ComponentSpec, device: torch.device, dtype: str, offload: bool = False) -> InpaintGenerator:
    """Load the pipeline named by `spec` (hub id, local folder or "tiny") onto `device`; with `offload` on CUDA,
    diffusers' model CPU offload keeps the sub-models in RAM and moves each to the GPU while it runs (the UNet, the
    largest, decides the GPU memory it needs). On CPU `offload` changes nothing."""
    torch_dtype = pick_dtype(dtype, device, half_ok=True)
    if spec.random:
        pipe, name, source = tiny_pipeline(), "tiny SD2-inpainting", sources.IN_PROCESS
        if torch_dtype != pipe.dtype:
            pipe.to(dtype=torch_dtype)
    else:
        is_path = sources.looks_like_path(spec.model)
        model = os.path.expanduser(spec.model) if is_path else spec.model
        pipe = StableDiffusionInpaintPipeline.from_pretrained(
            model, dtype=torch_dtype, local_files_only=True, cache_dir=None if is_path else sources.hf_hub_cache(),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        name, source = spec.model, f"{sources.LOCAL if is_path else 'Hugging Face hub cache'}: {model}"
    if offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    info = ComponentInfo(
        role="generator", name=name, architecture=ARCHITECTURE, source=source, pretrained=not spec.random,
        parameters=count_parameters(pipe.unet, pipe.vae, pipe.text_encoder),
    )
    return InpaintGenerator(pipe, info, device)


def tiny_pipeline() -> StableDiffusionInpaintPipeline:
    """SD2-inpainting's architecture at diffusers' test sizes, seeded random weights, no files."""
    with seeded_init():
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=9, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True,
        )
        vae = AutoencoderKL(
            block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, sample_size=128,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
            projection_dim=512, hidden_act="gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        ))
    return StableDiffusionInpaintPipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=clip_tokenizer(), unet=unet.eval(),
        scheduler=DDIMScheduler(**SD2_SCHEDULER), requires_safety_checker=False,
        # diffusers documents None for these two (no NSFW filter) but does not annotate them as optional
        safety_checker=None, feature_extractor=None,  # type: ignore[arg-type]
    )


def clip_tokenizer() -> CLIPTokenizer:
    """CLIP's real BPE tokenizer, built from the vocabulary open_clip ships exactly as CLIP builds it."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:49152 - 256 - 2 + 1]]
    units = list(bytes_to_unicode().values())
    tokens = units + [u + "</w>" for u in units] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    # transformers annotates merges as strings, but documents a list and its BPE backend takes these (a, b) pairs
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,  # type: ignore[arg-type]
                         model_max_length=77)


def download(spec: ComponentSpec) -> str:
    """Fetch the hub repo's configs, tokenizer and fp32 safetensors into the HF cache; the snapshot path."""
    return download_snapshot(spec, HUB_FILES)
