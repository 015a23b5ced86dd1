"""take/restore: a retry sends what the first attempt sent, whatever the model edited."""

from __future__ import annotations

from google.adk.models.llm_request import LlmRequest
from google.genai import types

from adk_retry.adapter._snapshot import restore, take


def user(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def model(text: str) -> types.Content:
    return types.Content(role="model", parts=[types.Part(text=text)])


def texts(request: LlmRequest) -> list[list[str | None]]:
    return [[part.text for part in content.parts or []] for content in request.contents]


def make_request() -> LlmRequest:
    return LlmRequest(
        contents=[user("hi"), model("hello"), user("more")],
        config=types.GenerateContentConfig(
            labels={"team": "a"},
            system_instruction="be brief",
            http_options=types.HttpOptions(headers={"x-user": "1"}, api_version="v1"),
        ),
    )


def test_restore_drops_appended_contents() -> None:
    request = make_request()
    before = texts(request)
    saved = take(request, config=False)
    request.contents.append(user("Continue"))
    request.contents.append(model("partial"))
    restore(request, saved)
    assert texts(request) == before


def test_restore_drops_parts_appended_to_last_content() -> None:
    request = make_request()
    last = request.contents[-1]
    saved = take(request, config=False)
    assert last.parts is not None
    last.parts.append(types.Part(text="fallback"))
    restore(request, saved)
    assert request.contents[-1] is last
    assert texts(request)[-1] == ["more"]


def test_restore_brings_back_replaced_parts_list() -> None:
    request = make_request()
    original_parts = request.contents[-1].parts
    saved = take(request, config=False)
    request.contents[-1].parts = [types.Part(text="swapped")]
    restore(request, saved)
    assert request.contents[-1].parts is original_parts
    assert texts(request)[-1] == ["more"]


def test_restore_brings_back_replaced_contents_list() -> None:
    request = make_request()
    original = request.contents
    before = texts(request)
    saved = take(request, config=False)
    request.contents = [user("something else")]
    restore(request, saved)
    assert request.contents is original
    assert texts(request) == before


def test_restore_after_replace_and_append() -> None:
    request = make_request()
    before = texts(request)
    saved = take(request, config=False)
    request.contents.append(user("extra"))
    request.contents = [*request.contents, user("copy")]
    restore(request, saved)
    assert texts(request) == before


def test_restore_of_empty_contents() -> None:
    request = LlmRequest()
    saved = take(request, config=False)
    request.contents.append(user("Continue"))
    restore(request, saved)
    assert request.contents == []


def test_restore_twice_from_one_snapshot() -> None:
    request = make_request()
    before = texts(request)
    saved = take(request, config=False)
    for attempt in range(3):
        request.contents.append(user(f"attempt {attempt}"))
        request.contents[-2].parts.append(types.Part(text="fallback"))  # type: ignore[union-attr]
        restore(request, saved)
        assert texts(request) == before


def test_without_config_flag_config_is_not_restored() -> None:
    request = make_request()
    saved = take(request, config=False)
    request.config.labels = None
    restore(request, saved)
    assert request.config.labels is None


def test_restore_config_fields() -> None:
    request = make_request()
    config = request.config
    http = config.http_options
    assert http is not None
    saved = take(request, config=True)

    config.labels = None
    config.system_instruction = None
    http.headers = {"x-user": "1", "x-goog-api-client": "google-adk/2"}
    http.api_version = "v1beta"
    restore(request, saved)

    assert request.config is config
    assert config.labels == {"team": "a"}
    assert config.system_instruction == "be brief"
    assert config.http_options is http
    assert http.headers == {"x-user": "1"}
    assert http.api_version == "v1"


def test_restore_replaced_config_and_http_options() -> None:
    request = make_request()
    config = request.config
    http = config.http_options
    saved = take(request, config=True)

    request.config.http_options = types.HttpOptions(headers={"x": "y"}, api_version="v2")
    request.config = types.GenerateContentConfig(labels={"other": "b"})
    restore(request, saved)

    assert request.config is config
    assert request.config.http_options is http
    assert request.config.labels == {"team": "a"}


def test_restore_http_options_created_by_model() -> None:
    request = LlmRequest(contents=[user("hi")])
    assert request.config.http_options is None
    saved = take(request, config=True)
    request.config.http_options = types.HttpOptions(headers={"x-goog-api-client": "adk"}, api_version="v1")
    restore(request, saved)
    assert request.config.http_options is None
