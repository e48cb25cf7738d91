"""The generator: Stable Diffusion 2 inpainting through diffusers, or a tiny random-weight twin.

The method regenerates the WHOLE image (mask all white, masked image zeros) from a partly noised
latent with 20 DDIM steps. `InpaintGenerator.generate` is that plain pipeline call; the noise
optimisation reuses `InpaintGenerator.pipe`'s parts in its own loop and must reproduce it.
"""
from __future__ import annotations

import gzip
import os

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..runtime import pick_dtype
from . import sources
from .interfaces import ComponentInfo, count_parameters
from .suites import ComponentSpec, download_snapshot

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


class InpaintGenerator:
    """Generator (interfaces.Generator) around a StableDiffusionInpaintPipeline with a DDIM scheduler."""

    def __init__(self, pipe: StableDiffusionInpaintPipeline, info: ComponentInfo, device: torch.device):
        self.pipe, self.info, self.device = pipe, info, device
        self.size = pipe.unet.config.sample_size * pipe.vae_scale_factor  # 512 for SD2, 64 for tiny

    def generate(self, image: Image.Image, prompt: str, seed: int = 0, strength: float = 0.6,
                 steps: int = 20, guidance: float = 8.0) -> Image.Image:
        """One stock pipeline call with the method's settings: the whole image is repainted."""
        image = image.convert("RGB").resize((self.size, self.size), Image.BICUBIC)
        mask = Image.new("L", image.size, 255)
        generator = torch.Generator(self.device).manual_seed(seed)
        return self.pipe(
            prompt=prompt, image=image, mask_image=mask, height=self.size, width=self.size, strength=strength,
            num_inference_steps=steps, guidance_scale=guidance, generator=generator,
        ).images[0]


def load(spec: ComponentSpec, device: torch.device, dtype: str) -> InpaintGenerator:
    """Load the pipeline named by `spec` (hub id, local folder or "tiny") onto `device`."""
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
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    info = ComponentInfo(
        role="generator", name=name, architecture=ARCHITECTURE, source=source, pretrained=not spec.random,
        parameters=count_parameters(pipe.unet, pipe.vae, pipe.text_encoder),
    )
    return InpaintGenerator(pipe, info, device)


def tiny_pipeline() -> StableDiffusionInpaintPipeline:
    """SD2-inpainting's architecture at diffusers' test sizes, seeded random weights, no files."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
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
        scheduler=DDIMScheduler(**SD2_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def clip_tokenizer() -> CLIPTokenizer:
    """CLIP's real BPE tokenizer, built from the vocabulary open_clip ships exactly as CLIP builds it."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:49152 - 256 - 2 + 1]]
    units = list(bytes_to_unicode().values())
    tokens = units + [u + "</w>" for u in units] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=77)


def download(spec: ComponentSpec) -> str:
    """Fetch the hub repo's configs, tokenizer and fp32 safetensors into the HF cache; the snapshot path."""
    return download_snapshot(spec, HUB_FILES)
