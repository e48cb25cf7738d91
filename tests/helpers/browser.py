"""Headless Chromium for the browser tests: where it is, how it starts, and small page helpers."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from bench.common.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: F401 (the tests' browser, from here)
from bench.common.serve import ROOT

SCREENSHOTS = ROOT / "assets" / "screenshots"


def examples_beside(page, image_id: str, split: str = "id"):
    """The packaged photos of `split` in the gallery beneath an image input (each tab has its own), in
    synood.data.photos.photos(split) order."""
    return page.locator(f"{image_id}-{split}-photos .thumbnail-item")


def set_number(page, element_id: str, value: str) -> None:
    """Type `value` into the number box of a slider or number input and leave it, as a person does."""
    box = page.locator(f"#{element_id} input[type='number']").first
    box.fill(value)
    box.press("Tab")


def error_badges(page, *element_ids: str) -> list[str]:
    """The components among `element_ids` that show Gradio's red "Error" badge (an event failed on them)."""
    return [element_id for element_id in element_ids
            if page.locator(f"#{element_id}").get_by_text("Error", exact=True).count()]


def toast(page, text: str, timeout: float = 60_000) -> str:
    """Wait for an error toast containing `text`; return every message the toast shows (one per line)."""
    page.locator(".toast-body").get_by_text(text).first.wait_for(timeout=timeout)
    return page.locator(".toast-body .toast-message-text").all_inner_texts()


def close_toasts(page) -> None:
    """Close every toast, so the next check sees only new ones."""
    for button in page.locator(".toast-close").all():
        button.click()
    page.locator(".toast-body").first.wait_for(state="detached", timeout=10_000)


def not_an_image(folder: Path) -> Path:
    """A text file named like a PNG."""
    path = folder / "notes.png"
    path.write_text("these are notes, not pixels\n")
    return path


def too_many_pixels(folder: Path) -> Path:
    """A real PNG of 9000 x 9000 pixels (a few hundred kB), over synood.data.images' 64-megapixel limit."""
    path = folder / "huge.png"
    if not path.exists():
        Image.new("L", (9000, 9000)).save(path, optimize=False, compress_level=1)
    return path


def new_run(page, button: str, run_box: str, timeout: float = 300_000) -> str:
    """Press `button` (a selector) and return the new run's id, once the run box (`run_box`, a selector of its
    textarea or input) shows another one."""
    before = page.locator(run_box).first.input_value()
    page.locator(button).click()
    page.wait_for_function(f"() => document.querySelector({run_box!r}).value !== {before!r}", timeout=timeout)
    return page.locator(run_box).first.input_value()
