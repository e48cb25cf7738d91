"""Random-weight twins of real models, saved where and how the real ones are: the paper suite's four models in a
fake Hugging Face hub cache and torch hub dir, and tiny Qwen2-VL and LLaVA-OneVision (small image-text-to-text
architectures other than LLaVA-1.5) as `save_pretrained` folders."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from synood.models import suites
from tests.helpers.hubcache import put_in_hf_cache

CPU = torch.device("cpu")
PAPER = suites.SUITES["paper"].components
RESNET50_FILE = "resnet50-11ad3fa6.pth"  # the torch hub file of IMAGENET1K_V2, the paper suite's classifier weights
# The hub repo each paper role is read from (the classifier's weights are a torch hub file, not a repo).
PAPER_REPOS = {"encoder": suites.OPEN_CLIP_HUB[PAPER["encoder"].model, PAPER["encoder"].weights],
               "labeller": PAPER["labeller"].model, "generator": PAPER["generator"].model}


def build_paper_twins(root: Path) -> Path:
    """Under root/hf (a hub cache) and root/torch (a TORCH_HOME): the paper encoder's architecture (ViT-B-16,
    QuickGELU) and ResNet-50 at full size with random weights (the loaders need the real shapes; the encoder in
    float16, 300 MB), and tiny LLaVA-1.5 and SD2-inpainting twins, each in its real repo's layout. Returns root."""
    import open_clip
    import torchvision
    from safetensors.torch import save_file

    from synood.models import generator, labeller
    from synood.runtime import seeded_init

    hf = root / "hf"
    with seeded_init():
        vit = open_clip.create_model(PAPER["encoder"].model, pretrained=None)
        resnet = torchvision.models.resnet50()
    weights = root / "open_clip_model.safetensors"
    save_file({k: v.half().contiguous() for k, v in vit.state_dict().items()}, str(weights))
    put_in_hf_cache(PAPER_REPOS["encoder"], {"open_clip_model.safetensors": weights}, cache=hf)
    weights.unlink()
    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(resnet.state_dict(), checkpoints / RESNET50_FILE)

    llava = labeller.load(suites.ComponentSpec("labeller", "transformers", suites.TINY), CPU, "float32")
    folder = root / "llava"
    llava.model.save_pretrained(folder)
    llava.processor.save_pretrained(folder)
    llava.processor.image_processor.save_pretrained(folder)  # the real repo's preprocessor_config.json
    put_in_hf_cache(PAPER_REPOS["labeller"], {".": folder}, cache=hf)

    sd2 = generator.load(suites.ComponentSpec("generator", "diffusers", suites.TINY), CPU, "float32")
    folder = root / "sd2"
    sd2.pipe.save_pretrained(folder)
    put_in_hf_cache(PAPER_REPOS["generator"], {".": folder}, cache=hf)
    return root


def link_paper_twins(twins: Path, roles: set[str], hf_cache: Path, torch_home: Path) -> None:
    """Make `roles`' twins (built by build_paper_twins under `twins`) visible in an empty hub cache and TORCH_HOME,
    as symbolic links: what a user who downloaded only those models has."""
    hf_cache.mkdir(parents=True, exist_ok=True)
    for role in roles & set(PAPER_REPOS):
        name = "models--" + PAPER_REPOS[role].replace("/", "--")
        os.symlink(twins / "hf" / name, hf_cache / name)
    if "classifier" in roles:
        checkpoints = torch_home / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        os.symlink(twins / "torch" / "hub" / "checkpoints" / RESNET50_FILE, checkpoints / RESNET50_FILE)


# The chat formats of Qwen2-VL and LLaVA-OneVision (the real templates also add a default system message; their image
# and turn markup is this).
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ONEVISION_TEMPLATE = QWEN2_VL_TEMPLATE.replace("<|vision_start|><|image_pad|><|vision_end|>", "<image>\n")
QWEN_SPECIALS = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def save_tiny_qwen2_vl(folder: Path) -> Path:
    """Qwen2-VL's architecture and processor at toy sizes (seeded random weights; a byte-level tokenizer with Qwen's
    special tokens, as no tokenizer files are at hand), saved with save_pretrained. Returns `folder`."""
    from transformers import (
        Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor,
    )

    from synood.models.labeller import byte_tokenizer

    tokenizer = byte_tokenizer(
        QWEN_SPECIALS + ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"], [],
        unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"})
    vocab = tokenizer.get_vocab()
    grid = dict(patch_size=4, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=16 * 16, max_pixels=32 * 32, **grid), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**grid), chat_template=QWEN2_VL_TEMPLATE)
    config = Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, mlp_ratio=2, num_heads=4, patch_size=4,
                           spatial_merge_size=2, temporal_patch_size=2),
        text_config=dict(vocab_size=len(vocab), max_position_embeddings=512, **TINY_TEXT,
                         rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
                         bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"],
                         pad_token_id=vocab["<|endoftext|>"]),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    return _save(Qwen2VLForConditionalGeneration, config, processor, folder)


def save_tiny_llava_onevision(folder: Path) -> Path:
    """LLaVA-OneVision's architecture (SigLIP vision, Qwen2 text, any-resolution tiles) and processor at toy sizes,
    seeded random weights, saved with save_pretrained. Returns `folder`."""
    from transformers import (
        LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor, Qwen2Config, SiglipVisionConfig,
    )

    from synood.models.labeller import byte_tokenizer

    tokenizer = byte_tokenizer(QWEN_SPECIALS + ["<image>", "<video>"], [], unk_token="<unk>", eos_token="<|im_end|>",
                               pad_token="<|endoftext|>",
                               extra_special_tokens={"image_token": "<image>", "video_token": "<video>"})
    vocab = tokenizer.get_vocab()
    size, patch = 32, 8
    tiles = [[size, size], [size, 2 * size], [2 * size, size]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": size, "width": size}, image_grid_pinpoints=tiles,
                                                     crop_size={"height": size, "width": size}),
        tokenizer=tokenizer, video_processor=LlavaOnevisionVideoProcessor(), num_image_tokens=(size // patch) ** 2,
        vision_feature_select_strategy="full", chat_template=ONEVISION_TEMPLATE)
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(image_size=size, patch_size=patch, hidden_size=32, intermediate_size=37,
                                         num_hidden_layers=2, num_attention_heads=4),
        text_config=Qwen2Config(vocab_size=len(vocab), max_position_embeddings=2048, **TINY_TEXT,
                                eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"]),
        image_token_index=vocab["<image>"], video_token_index=vocab["<video>"], vision_feature_select_strategy="full",
        vision_feature_layer=-1, image_grid_pinpoints=tiles)
    return _save(LlavaOnevisionForConditionalGeneration, config, processor, folder)


def _save(model_class, config, processor, folder: Path) -> Path:
    from synood.runtime import seeded_init

    with seeded_init():
        model = model_class(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
