"""Inputs shared by tabs: an image upload with the packaged example photos beneath it."""
from __future__ import annotations

import gradio as gr

from synood import photos


def photo_input(elem_id: str, label: str = "ID image", split: str | None = "id", height: int = 300,
                examples_label: str = "Packaged photos", per_page: int = 10) -> gr.Image:
    """A PIL image input (upload or clipboard) and clickable packaged photos of `split` (None: all)."""
    image = gr.Image(type="pil", label=label, sources=["upload", "clipboard"], height=height, elem_id=elem_id)
    gr.Examples([[str(p.path)] for p in photos.photos(split)], inputs=image, label=examples_label,
                examples_per_page=per_page)
    return image
