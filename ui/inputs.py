"""Inputs shared by tabs: an image upload with galleries of the packaged example photos beneath it; every way in
(upload, paste, photo click, API call) reaches the handler as an undecoded path, read by synood.data.images."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from gradio import processing_utils
from gradio.data_classes import ImageData
from PIL import Image

from synood.data import images, photos
from synood.errors import UserError

from .errors import shows_user_errors

SPLIT_TITLES = {"id": "In-distribution photos (one ImageNet class each)",
                "ood": "Out-of-distribution photos (no ImageNet class)"}


@shows_user_errors
def undecoded(payload: ImageData | None) -> str | None:
    """The path of an uploaded image as Gradio stored it (an API caller's inline data: URL is saved first)."""
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        try:
            return processing_utils.save_base64_to_cache(payload.url, gr.utils.get_upload_folder(), payload.orig_name)
        except ValueError:
            raise UserError("The image sent inline (a data: URL) is not valid base64.") from None
    return payload.path


def photo_input(elem_id: str, label: str = "ID image", split: str | None = "id", height: int = 300) -> gr.Image:
    """An image input (upload or clipboard) and, beneath it, a captioned gallery of the packaged photos of `split`
    (None: the ID photos, then the OOD ones, each in its own gallery); clicking a photo puts it in the input.

    Its handlers get the file's path undecoded (gr.Image's own preprocess would open it with Pillow, outside
    synood.data.images' limits and messages). The override lives on this instance, so no handler may return a
    gr.update() for the input: Gradio rebuilds a session's copy of a component from its class on a prop update
    (gr.Examples does, which is why the photos are a gallery whose click returns a plain path)."""
    image = gr.Image(type="filepath", label=label, sources=["upload", "clipboard"], height=height, elem_id=elem_id)
    setattr(image, "preprocess", undecoded)  # on this instance only (a method of the class otherwise)
    for part in ("id", "ood") if split is None else (split,):
        chosen = photos.photos(part)
        if not chosen:
            continue
        gallery = gr.Gallery([(str(p.path), p.title) for p in chosen], label=SPLIT_TITLES[part], columns=4,
                             height=230, object_fit="cover", allow_preview=False, interactive=False,
                             buttons=[], elem_id=f"{elem_id}-{part}-photos", elem_classes=["photo-gallery"])
        gallery.select(pick(chosen), outputs=image, api_visibility="private", show_progress="hidden")
    return image


def pick(chosen: list[photos.Photo]):
    """The gallery handler: the clicked photo's path, for the image input."""
    @shows_user_errors
    def picked(event: gr.SelectData) -> str:
        return str(chosen[event.index].path)
    return picked


def chosen_path(path: str | None) -> str:
    """The file of a `photo_input`; a UserError when there is none."""
    if path is None:
        raise UserError("Upload an image or pick an example first.")
    return path


def uploaded_image(path: str | None) -> Image.Image:
    """The file of a `photo_input` as RGB, through synood.data.images (its limits, its messages naming the file);
    a UserError (ImageError) when there is none or it cannot be used."""
    path = chosen_path(path)
    return images.load_image(path, name=Path(path).name)
