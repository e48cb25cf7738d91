"""One base class for errors a user caused: a bad file or folder, a bad config value, a missing model, an unknown run.

The CLI catches UserError once and prints its one-line message; the app maps it to one message in one place
(ui/errors.py). Anything else that escapes is a programming error and surfaces as one. Each subclass also keeps the
builtin base it had (ValueError or RuntimeError), so callers that catch those still do."""
from __future__ import annotations


class UserError(Exception):
    """An error the user can fix from its message alone: it names the input, the problem and what is allowed."""
