"""Inputs shared by tabs: an image upload with the packaged example photos beneath it, read by synood.images."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio import processing_utils
from gradio.data_classes import ImageData
from PIL import Image

from synood import images, photos


def photo_input(elem_id: str, label: str = "ID image", split: str | None = "id", height: int = 300,
                examples_label: str = "Packaged photos", per_page: int = 10) -> gr.Image:
    """An image input (upload or clipboard) and clickable packaged photos of `split` (None: all). Its handlers
    get the file's path, undecoded: read it with `uploaded_image`."""
    image = gr.Image(type="filepath", label=label, sources=["upload", "clipboard"], height=height, elem_id=elem_id)
    image.preprocess = undecoded  # gr.Image's own would open the file with Pillow, outside our limits and messages
    gr.Examples([[str(p.path)] for p in photos.photos(split)], inputs=image, label=examples_label,
                examples_per_page=per_page)
    return image


def undecoded(payload: ImageData | None) -> str | None:
    """The path of an uploaded image as Gradio stored it (an API caller's inline data: URL is saved first)."""
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        try:
            return processing_utils.save_base64_to_cache(payload.url, gr.utils.get_upload_folder(), payload.orig_name)
        except ValueError:
            raise gr.Error("The image sent inline (a data: URL) is not valid base64.", print_exception=False) from None
    return payload.path


def uploaded_image(path: str | None) -> Image.Image:
    """The file of a `photo_input` as RGB, through synood.images (its limits, its messages naming the file);
    a gr.Error without a traceback when there is none or it cannot be used."""
    if path is None:
        raise gr.Error("Upload an image or pick an example first.", print_exception=False)
    try:
        return images.load_image(path, name=Path(path).name)
    except images.ImageError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
