"""One way from a form to a RunRequest, for the page, the `/run` API and the command line.

Each front end names the request's fields it sets; what it leaves out (or sends as None) takes
RunRequest's own default, so a default is written once, in `arena/core/request.py`."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from arena.core.request import RunRequest

DEFAULTS = RunRequest()
DEFAULT_CONFIGS = ",".join(DEFAULTS.configs)
FIELDS = tuple(f.name for f in fields(RunRequest))
# Optional text: blank means "not set" (a form's empty box, the API's "").
_BLANK_IS_UNSET = ("gpus", "max_memory", "draft_model")


def request_from(**values: Any) -> RunRequest:
    """A RunRequest from named form values: None (and a blank GPUs or memory box) means the
    field's default; an unknown name is refused (RequestError) like any bad input. Values are
    checked later by `arena.execute.prepare.validate`, not here."""
    given = {}
    for name, value in values.items():
        if isinstance(value, str) and name in _BLANK_IS_UNSET:
            value = value.strip() or None
        if value is not None:
            given[name] = value
    return RunRequest.from_dict(given)
