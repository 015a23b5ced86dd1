"""The attribute names adk-retry's telemetry uses, and the values ADK's own telemetry would give.

Why here and from ``opentelemetry-semantic-conventions``: ADK 2.x already
feeds dashboards with ``gen_ai.*`` spans and metrics named by that package
(installed with ADK, through ``opentelemetry-sdk``). A retry that carries the
same ``gen_ai.agent.name``, ``gen_ai.request.model``, ``gen_ai.provider.name``
and ``error.type`` as ADK's ``generate_content`` span joins it in a query
without a mapping table. What the conventions have no name for (the transient
class, the reason) lives under ``adk_retry.``.

Everything here runs on the failure path only.
"""

from __future__ import annotations

import os
import sys
from typing import Final

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GenAiProviderNameValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_RESEND_COUNT

__all__ = [
    "ATTEMPT",
    "BREAKER_STATE",
    "DELAY",
    "ERROR_CLASS",
    "ERROR_TYPE",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MODEL",
    "HTTP_REQUEST_RESEND_COUNT",
    "OUTCOME",
    "REASON",
    "TO_MODEL",
    "error_type",
    "note_model_class",
    "provider_name",
]

# adk-retry's own attributes: what the conventions have no name for.
ATTEMPT: Final = "adk_retry.attempt"
"""The attempt an event is about, from 1 (``http.request.resend_count`` is this minus one)."""
DELAY: Final = "adk_retry.delay"
"""Seconds waited before the next attempt (the backoff), on a retry event."""
ERROR_CLASS: Final = "adk_retry.error_class"
"""The transient class of the failure: ``rate_limit``, ``server_error``, ``connection``, ..., or ``other``."""
REASON: Final = "adk_retry.reason"
"""Why: ``backoff`` or ``hint`` on a retry; ``attempts_exhausted``, ``deadline``, ... on a give-up."""
OUTCOME: Final = "adk_retry.outcome"
"""How a call ended, on ``adk_retry.calls``: ``success``, ``failure`` or ``circuit_open``."""
BREAKER_STATE: Final = "adk_retry.breaker.state"
"""The circuit's new state, on ``adk_retry.breaker_transitions``."""
TO_MODEL: Final = "adk_retry.to_model"
"""The model a call moved to (``adk_retry.fallbacks``) or hedged on (``adk_retry.hedges``)."""

_GEMINI: Final = GenAiProviderNameValues.GCP_GEMINI.value
_VERTEX: Final = GenAiProviderNameValues.GCP_VERTEX_AI.value
_ANTHROPIC: Final = GenAiProviderNameValues.ANTHROPIC.value
_OPENAI: Final = GenAiProviderNameValues.OPENAI.value

# Leading segments of a resource path (projects/.../models/...): a place, not a provider (as ADK reads them).
_RESOURCE_SEGMENTS: Final = frozenset({"endpoints", "locations", "models", "projects", "publishers", "tunedmodels"})
# LiteLLM prefixes whose provider has a well-known semconv value of its own.
_PREFIXES: Final = {"gemini": _GEMINI, "vertex_ai": _VERTEX, "azure": GenAiProviderNameValues.AZURE_AI_OPENAI.value}
# Model classes that say who serves them, by class name along the MRO (no ADK import).
_CLASSES: Final = {"Gemini": None, "ApigeeLlm": None, "Gemma": None, "AnthropicLlm": _ANTHROPIC, "Claude": _ANTHROPIC}

_by_model: dict[str, str | None] = {}


def note_model_class(model: str, class_names: tuple[str, ...]) -> None:
    """Remember what the class of the model named ``model`` says of its provider (once per wrapped model).

    The adapter calls it when it wraps a model instance, so a model whose name
    says nothing (a bare ``claude-...`` does, a custom id may not) still gets
    its provider from its class. ``None`` in the table means "Google: Gemini or
    Vertex AI, by the environment", decided when asked.

    Example:
        >>> note_model_class("my-tuned-model", ("AnthropicLlm", "BaseLlm"))
        >>> provider_name("my-tuned-model")
        'anthropic'
    """
    for name in class_names:
        if name in _CLASSES:
            _by_model[model] = _CLASSES[name]
            return
        if name == "LiteLlm":
            # litellm's own default for an unprefixed id (gpt-4o, o3-mini, ...) is OpenAI.
            _by_model[model] = _OPENAI
            return


def provider_name(model: str | None) -> str:
    """The ``gen_ai.provider.name`` of ``model``, as ADK's own telemetry names it.

    A LiteLLM ``provider/model`` id gives its prefix (lower-cased); ``gemini-*``
    and a model with no name give ``gcp.gemini`` (``gcp.vertex_ai`` when
    google-genai is set to Vertex AI, as ADK decides); ``claude-*`` gives
    ``anthropic``; otherwise the model's class decides (:func:`note_model_class`),
    and failing that ADK's own fallback, Gemini.

    Example:
        >>> provider_name("openai/gpt-4o-mini"), provider_name("gemini-2.5-flash"), provider_name("claude-sonnet-4")
        ('openai', 'gcp.gemini', 'anthropic')
    """
    if not model:
        return _google()
    name = _bare(model)
    lowered = name.lower()
    if lowered.startswith("gemini-"):
        return _google()
    if lowered.startswith(("claude-", "claude.")):
        return _ANTHROPIC
    prefix, separator, _ = lowered.partition("/")
    if separator and prefix and prefix not in _RESOURCE_SEGMENTS:
        return _PREFIXES.get(prefix, prefix)
    if model in _by_model:
        known = _by_model[model]
        return known if known is not None else _google()
    return _google()


def _bare(model: str) -> str:
    """``projects/p/locations/l/publishers/x/models/m`` and ``models/m`` -> ``m``; anything else unchanged."""
    if model.startswith("projects/") and "/models/" in model:
        return model.rsplit("/models/", 1)[1]
    if model.startswith("models/"):
        return model[len("models/") :]
    return model


def _google() -> str:
    """Gemini through the Gemini API or Vertex AI, read from google-genai's environment as ADK reads it."""
    for variable in ("GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_USE_VERTEXAI"):
        if variable in os.environ:
            return _VERTEX if os.environ[variable].lower() in ("true", "1") else _GEMINI
    return _GEMINI


def error_type(error: BaseException | None) -> str:
    """The ``error.type`` of a failure, as ADK's own metrics and spans give it.

    An ``error_type`` the error carries (ADK's own errors), the HTTP status
    code of a google-genai ``APIError`` (the SDK folds every 4xx into one
    class), else the class name. Never the message: it may carry a secret.

    Example:
        >>> error_type(TimeoutError("slow")), error_type(None)
        ('TimeoutError', '_OTHER')
    """
    if error is None:
        return "_OTHER"  # the conventions' value for "no better name"
    try:
        custom = getattr(error, "error_type", None)
        if isinstance(custom, str) and custom:
            return custom
        errors = sys.modules.get("google.genai.errors")  # looked up, never imported
        api_error = getattr(errors, "APIError", None)
        if api_error is not None and isinstance(error, api_error) and getattr(error, "code", None) is not None:
            return str(error.code)
    except Exception:  # naming the error must not raise on the failure path
        pass
    return type(error).__name__
