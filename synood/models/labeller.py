"""The context labeller: LLaVA-1.5 (or any transformers image-text-to-text model), or a tiny random twin.

It lists what an image holds besides its main object ("panda" -> bamboo, tourist, leaf, railing);
`parse_context` turns the model's free text into a clean list of short nouns.
"""
from __future__ import annotations

import os
import re
from typing import Any, Protocol

import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForImageTextToText, AutoProcessor, CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
    GenerationMixin, LlavaForConditionalGeneration, LlavaProcessor, PreTrainedModel, PreTrainedTokenizerFast,
    ProcessorMixin,
)

from synood.runtime import pick_dtype, seeded_init
from synood.models import sources
from synood.models.interfaces import ComponentInfo, count_parameters
from synood.models.suites import ComponentSpec, ModelUnavailableError, download_snapshot

PROMPT = (
    "List the elements of this image other than its main object: the background, the scenery, other objects "
    "and people. Answer only with a comma-separated list of short nouns."
)
# llava-hf/llava-1.5-7b-hf's chat template, and what it renders for one image and one text (the fallback).
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_PROMPT = "USER: {image}\n{prompt} ASSISTANT:"
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model"]

_PARENTHESES = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SEPARATORS = re.compile(r"[,;\n]|\band\b|&", re.IGNORECASE)
_BULLET = re.compile(r"^(?:[-*•·+]+|\d+\s*[.):]|\(\d+\))\s*")
_LETTER = re.compile(r"[^\W\d_]")
_PREAMBLE = re.compile(
    r"^(?:(?:in )?(?:the|this) (?:image|picture|photo|scene) (?:also )?(?:shows|features|contains|includes|has|depicts)"
    r"|there (?:is|are))\s+")
_LEADING_WORDS = re.compile(r"^(?:(?:a|an|the|some|several|many|other|various)\s+)+")
_PLURALS = (("ies", "y"), ("ves", "f"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("xes", "x"), ("s", ""))
_FILLER = {
    "image", "picture", "photo", "photograph", "scene", "main object", "object", "objects", "element", "elements",
    "thing", "things", "none", "nothing", "n/a", "etc", "other", "others", "more",
}


class ChatModel(Protocol):
    """What the labeller uses of a transformers image-text-to-text model (a PreTrainedModel with GenerationMixin)."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


class MLLMLabeller:
    """ContextLabeller (interfaces.ContextLabeller) around a transformers multimodal chat model."""

    def __init__(self, model: ChatModel, processor: ProcessorMixin, info: ComponentInfo,
                 max_new_tokens: int = 48):
        self.model, self.processor, self.info, self.max_new_tokens = model, processor, info, max_new_tokens
        self.prompt = PROMPT

    def context(self, image: Image.Image) -> list[str]:
        """The image's context elements: the model's answer to `prompt`, parsed."""
        return parse_context(self.answer(image))

    def answer(self, image: Image.Image) -> str:
        """The model's raw greedy answer to `prompt` about `image` (shown next to the parsed list)."""
        inputs = self.processor(images=image.convert("RGB"), text=self.chat_text(), return_tensors="pt")
        inputs = inputs.to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def chat_text(self) -> str:
        """The model's chat prompt for one image and `self.prompt`, LLaVA-1.5's when it has no template."""
        if getattr(self.processor, "chat_template", None):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}]
            # transformers annotates message content as a string; its processors take this documented list of parts
            return self.processor.apply_chat_template(conversation,  # type: ignore[arg-type]
                                                      add_generation_prompt=True)
        return LLAVA_PROMPT.format(image=getattr(self.processor, "image_token", "<image>"), prompt=self.prompt)


def parse_context(text: str, limit: int = 8) -> list[str]:
    """A model's free-text answer -> at most `limit` distinct, lowercase short noun phrases, in order."""
    items, seen = [], set()
    text = "".join(ch if ch == "\n" or (ch.isprintable() and ch != "\ufffd") else " " for ch in text)
    for raw in _SEPARATORS.split(_PARENTHESES.sub(" ", text)):
        item = _BULLET.sub("", raw.rsplit(":", 1)[-1].strip())
        item = item.strip(" \t\"'`“”‘’*_").rstrip(".!?").strip().lower()
        item = _LEADING_WORDS.sub("", _PREAMBLE.sub("", " ".join(item.split())))
        key = _singular(item)
        if not _LETTER.search(item) or len(item.split()) > 4 or item in _FILLER or key in seen:
            continue
        seen.add(key)
        items.append(item)
        if len(items) == limit:
            break
    return items


def _singular(phrase: str) -> str:
    """A rough singular of the last word, so "leaf" and "leaves" count as one element."""
    head, _, word = phrase.rpartition(" ")
    for plural, single in _PLURALS:
        if word.endswith(plural) and not word.endswith(("ss", "us", "is")) and len(word) > len(plural) + 1:
            word = word[: -len(plural)] + single
            break
    return f"{head} {word}".strip()


def load(spec: ComponentSpec, device: torch.device, dtype: str, offload: bool = False) -> MLLMLabeller:
    """Load the labeller named by `spec` (hub id, local folder or "tiny") onto `device`; with `offload` on CUDA,
    accelerate places it as device_map="auto" does: the layers that fit on the GPU there, the rest in RAM, moved
    to the GPU as each runs. On CPU `offload` changes nothing."""
    offload = offload and device.type == "cuda"
    torch_dtype = pick_dtype(dtype, device, half_ok=True)
    model: PreTrainedModel
    if spec.random:
        model, processor = tiny_llava()
        name, source = "tiny LLaVA", sources.IN_PROCESS
    else:
        is_path = sources.looks_like_path(spec.model)
        path = os.path.expanduser(spec.model) if is_path else spec.model
        where = dict(local_files_only=True, cache_dir=None if is_path else sources.hf_hub_cache())
        processor = AutoProcessor.from_pretrained(path, **where)
        placement = dict(device_map="auto") if offload else {}
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype, **where, **placement)
        name, source = spec.model, f"{sources.LOCAL if is_path else 'Hugging Face hub cache'}: {path}"
    if not isinstance(model, GenerationMixin):
        raise ModelUnavailableError(f"{spec.model} is a {type(model).__name__}, which cannot generate text; the "
                                    "labeller needs an image-text-to-text model such as LLaVA-1.5")
    # transformers wraps PreTrainedModel.to with functools.wraps(torch.nn.Module.to), so a type checker sees the
    # unbound method; `to` and `eval` move and switch the model in place
    if offload:
        offload_in_place(model, torch_dtype)
    else:
        model.to(device=device, dtype=torch_dtype)  # type: ignore[call-arg]
    model.eval()
    info = ComponentInfo(
        role="labeller", name=name, architecture=type(model).__name__, source=source, pretrained=not spec.random,
        parameters=count_parameters(model),
    )
    return MLLMLabeller(model, processor, info)


def offload_in_place(model: PreTrainedModel, dtype: torch.dtype) -> None:
    """Cast `model` to `dtype` and dispatch it as device_map="auto" places it (GPU memory first, then RAM), unless
    from_pretrained did already (a dispatched model with parts in RAM refuses `to`)."""
    if getattr(model, "hf_device_map", None):
        return
    from accelerate import dispatch_model, infer_auto_device_map

    model.to(dtype=dtype)  # type: ignore[call-arg]  # transformers' wrapped `to` (see load)
    dispatch_model(model, device_map=infer_auto_device_map(model, no_split_module_classes=model._no_split_modules
                                                           or []))


def tiny_llava() -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """LLaVA-1.5's architecture and processor at toy sizes, seeded random weights, no files."""
    tokenizer = byte_tokenizer(["<unk>", "<s>", "</s>"], ["<image>", "<pad>"], prefix="<s>", unk_token="<unk>",
                               bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                               extra_special_tokens={"image_token": "<image>"})
    vocab = tokenizer.get_vocab()
    image_size, patch = 32, 8
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch, num_additional_image_tokens=1,
        vision_feature_select_strategy="default", chat_template=LLAVA_CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=image_size, patch_size=patch, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, projection_dim=32),
        text_config=LlamaConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=512, bos_token_id=vocab["<s>"],
            eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"]),
        image_token_index=vocab["<image>"], image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-2,
    )
    with seeded_init():
        model = LlavaForConditionalGeneration(config)
    return model.eval(), processor


def byte_tokenizer(head: list[str], tail: list[str], prefix: str | None = None, **special: Any
                   ) -> PreTrainedTokenizerFast:
    """A tokenizer built without files for tiny twins: `head`, the 256 byte-level symbols and `tail` as its vocabulary
    (no merges), `prefix` put before every text, `special` (unk_token=..., extra_special_tokens=...) as
    PreTrainedTokenizerFast takes them."""
    vocab = {token: i for i, token in enumerate([*head, *sorted(pre_tokenizers.ByteLevel.alphabet()), *tail])}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=special.get("unk_token")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    if prefix:
        bpe.post_processor = processors.TemplateProcessing(single=f"{prefix} $A", special_tokens=[(prefix, vocab[prefix])])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **special)


def download(spec: ComponentSpec) -> str:
    """Fetch the hub repo's configs, tokenizer, chat template and safetensors into the HF cache; the snapshot path."""
    return download_snapshot(spec, HUB_FILES)
