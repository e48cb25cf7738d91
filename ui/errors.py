"""The one place where the app turns an error a user caused (synood.errors.UserError) into a message on the page.

Tab handlers raise UserError (or let the library's subclasses through) and are wrapped with `shows_user_errors`:
the message becomes one Gradio toast without a traceback, and what the page already shows stays. Any other
exception is a bug and surfaces as one (Gradio's generic error, with the traceback in the server log)."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

import gradio as gr

from synood.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


def toast(exc: UserError) -> gr.Error:
    """The Gradio error that shows `exc`'s one line, without a traceback in the log."""
    return gr.Error(str(exc), print_exception=False)


def shows_user_errors(handler: F) -> F:
    """`handler` (a function or a generator, as Gradio calls it) with every UserError it raises shown as a toast."""
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from handler(*args, **kwargs)
            except UserError as exc:
                raise toast(exc) from None
        return stream  # type: ignore[return-value]

    @functools.wraps(handler)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except UserError as exc:
            raise toast(exc) from None
    return call  # type: ignore[return-value]
