"""Text prompts of the method, torch-free so the app can build them before any model loads."""
from __future__ import annotations

from typing import Sequence


def context_prompt(labels: Sequence[str], template: str = "A photo only remain {}", max_chars: int = 73) -> str:
    """The generator's text prompt: the context labels joined by commas, cut to `max_chars`
    characters as the reference code does (SD2's text encoder reads at most 77 tokens)."""
    context = ", ".join(label.strip() for label in labels if label.strip())
    return template.format(context[:max_chars].rstrip(" ,"))
