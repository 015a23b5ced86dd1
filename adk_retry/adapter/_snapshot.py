"""Save what a model edits in an ``LlmRequest``, and put it back before a retry.

Models edit the request while sending it, and each retry must send what the
first attempt sent:

- ``BaseLlm._maybe_append_user_content`` (every model, 2.3 and 2.13) appends
  a user content to ``contents`` when the last one is not the user's;
- ``LiteLlm`` appends a fallback text part to the last user content when it
  has no payload;
- ``Gemini`` also clears ``config.labels`` and ``config.system_instruction``
  and rewrites ``config.http_options`` (headers, api_version).

ADK 2.13's ``_RequestSnapshot`` deep-copies contents and config, 0.1-1.1 ms
per call, which would dwarf everything else a retry layer costs on the
success path. The edits above only ever *append* to ``contents`` and to the
last content's ``parts``, or reassign a few config fields, so what is saved
is their lengths and references: a handful of attribute reads. Deeper edits
(Gemini swapping a part for a safe copy) are idempotent: doing them again on
the restored request gives the same request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from google.adk.models.llm_request import LlmRequest

__all__ = ["Snapshot", "copy_of", "restore", "take"]

Snapshot: TypeAlias = tuple[Any, ...]
"""An opaque saved state; only :func:`restore` reads it."""


def take(request: LlmRequest, *, config: bool) -> Snapshot:
    """Save the parts of ``request`` a model may edit; ``config`` adds the Gemini fields.

    Example:
        >>> from google.adk.models.llm_request import LlmRequest
        >>> from google.genai import types
        >>> request = LlmRequest(contents=[types.Content(role="user", parts=[types.Part(text="hi")])])
        >>> saved = take(request, config=False)
        >>> request.contents.append(types.Content(role="user", parts=[]))
        >>> request.contents[0].parts.append(types.Part(text="fallback"))
        >>> restore(request, saved)
        >>> len(request.contents), len(request.contents[0].parts)
        (1, 1)
    """
    contents = request.contents
    last = contents[-1] if contents else None
    parts = None if last is None else last.parts
    saved_config: tuple[Any, ...] | None = None
    if config:
        cfg = request.config
        http = cfg.http_options
        saved_config = (
            cfg,
            cfg.labels,
            cfg.system_instruction,
            http,
            None if http is None else (http.headers, http.api_version),
        )
    return (contents, len(contents), last, parts, 0 if parts is None else len(parts), saved_config)


def restore(request: LlmRequest, saved: Snapshot) -> None:
    """Roll ``request`` back, in place, to what :func:`take` saved."""
    contents, length, last, parts, parts_length, saved_config = saved
    if request.contents is not contents:
        request.contents = contents
    del contents[length:]
    if last is not None:
        last.parts = parts
        if parts is not None:
            del parts[parts_length:]
    if saved_config is not None:
        cfg, labels, system_instruction, http, http_fields = saved_config
        request.config = cfg
        cfg.labels, cfg.system_instruction, cfg.http_options = labels, system_instruction, http
        if http is not None:
            http.headers, http.api_version = http_fields


def copy_of(request: LlmRequest, saved: Snapshot) -> LlmRequest:
    """A private copy of ``request`` as :func:`take` saved it, leaving ``request`` alone.

    For a hedge: an attempt that runs beside another one, which may still be
    reading (or editing) the shared request. A deep copy of the contents and
    config (0.1-1 ms), made only when a hedge starts.
    """
    contents, length, last, parts, parts_length, saved_config = saved
    copy = request.model_copy()
    copy.contents = [content.model_copy(deep=True) for content in contents[:length]]
    if last is not None and copy.contents:
        copy.contents[-1].parts = (
            None if parts is None else [part.model_copy(deep=True) for part in parts[:parts_length]]
        )
    cfg = request.config if saved_config is None else saved_config[0]
    copy.config = cfg.model_copy(deep=True)
    if saved_config is not None:
        _, labels, system_instruction, http, http_fields = saved_config
        copy.config.labels = None if labels is None else dict(labels)
        copy.config.system_instruction = system_instruction
        if http is not None:
            copy.config.http_options = http.model_copy(deep=True)
            copy.config.http_options.headers, copy.config.http_options.api_version = http_fields
    return copy
