"""A bound on waiting runs and sweeps only: the one place the app reaches into Gradio's private
queue (`Blocks._queue.push`, Gradio 6.17).

Why a patch: Gradio's own `queue(max_size=N)` counts every event, reads included (gradio_client
sends even `queue=False` endpoints through the queue), so a few visitors opening the page could
fill it; and its refusal (HTTP 503) makes the page and gradio_client print their own fixed text.
Gradio has no public hook that runs before an event joins the queue and sees the queue, so this
module wraps `push`: a run or sweep (concurrency id GPU_QUEUE) that would find `max_waiting`
others waiting is refused as a validation error (HTTP 422), the route Gradio itself uses for
`validator=` functions. The page then shows our words under the event's first visible input and
gradio_client raises them as a ValidationError.

What this relies on, checked by tests/test_web_api.py (which fails when Gradio changes it):
`Queue.push(body, request, username)` returning `(success, payload, state)` with state
"validator_error" mapped to HTTP 422, `Queue.max_size`, `Queue.event_queue_per_concurrency_id`
(concurrency id -> a group whose `.queue` lists waiting events) and `Blocks.fns[fn_index]`
carrying `concurrency_id`, `inputs` and `fn`."""

from __future__ import annotations

import inspect
from typing import Any

import gradio as gr

from arena.ui.web.state import GPU_QUEUE

QUEUE_FULL = ("The arena is busy: {waiting} runs are already waiting, the most this server queues. "
              "Nothing was started; please try again in a few minutes.")


def bound_measuring_queue(demo: gr.Blocks, max_waiting: int) -> None:
    """Refuse a run or sweep when `max_waiting` of them already wait; nothing else counts.
    Call after `demo.queue()`."""
    queue = demo._queue
    queue.max_size = None
    push = queue.push

    async def push_measuring_bounded(body, request, username):
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is not None and fn.concurrency_id == GPU_QUEUE:
            waiting = measuring_waiting(demo)
            if waiting >= max_waiting:
                return False, refusal(fn, QUEUE_FULL.format(waiting=waiting)), "validator_error"
        return await push(body=body, request=request, username=username)

    queue.push = push_measuring_bounded


def measuring_waiting(demo: gr.Blocks) -> int:
    """Runs and sweeps waiting (not the one measuring)."""
    group = demo._queue.event_queue_per_concurrency_id.get(GPU_QUEUE)
    return len(group.queue) if group is not None else 0


def refusal(fn: Any, message: str) -> list[dict[str, Any]]:
    """Gradio's validation payload (what `gr.validate` makes), the message on the first input a
    visitor sees."""
    inputs = list(getattr(fn, "inputs", None) or [])
    shown = next((i for i, c in enumerate(inputs) if not isinstance(c, gr.State)), 0)
    names = _parameter_names(fn)
    return [{"__type__": "validate", "is_valid": i != shown, "message": message if i == shown else "",
             "parameter_name": names[i] if i < len(names) else "queue"} for i in range(max(1, len(inputs)))]


def _parameter_names(fn: Any) -> list[str]:
    try:
        return [p for p in inspect.signature(fn.fn).parameters if p != "request"]
    except (TypeError, ValueError, AttributeError):
        return []
