"""ADK's own CLI paths: ``adk api_server`` / ``adk web`` with ``--extra_plugins``, and ``adk run`` on an App folder.

Each test goes through ADK's loader (``AgentLoader`` + ``AdkWebServer``'s
``--extra_plugins`` handling, or the ``adk`` command itself) against the fault
server, and checks that adk-retry, not a layer beneath it, did the retry:
the server saw two requests, the answer arrived, and adk-retry logged the
retry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adk_retry.testing import Fault, FaultServer, no_waits
from tests.conftest import messages

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PLAIN_AGENT = """
import os

from google.adk.agents import LlmAgent
from google.adk.models.lite_llm import LiteLlm

root_agent = LlmAgent(
    name="plain",
    model=LiteLlm(model="openai/fault-model", api_base=os.environ["ADK_RETRY_API_BASE"]),
    instruction="Answer briefly.",
)
"""


@pytest.fixture
def cli_env(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment an ``adk`` command gets: the fault server as the provider, a dummy key.

    ADK imports agent folders as top-level modules and puts the agents
    directory on ``sys.path``; both are undone here so that each test's
    folder is imported afresh, with this test's server address.
    """
    env = {"ADK_RETRY_API_BASE": server.url, "OPENAI_API_KEY": "dummy", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ADK_RETRY_MODEL", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    loaded = set(sys.modules)
    yield env
    for name in set(sys.modules) - loaded:
        if name.split(".")[0] in {"retry_app", "plain_agent"}:
            del sys.modules[name]


@pytest.fixture
def plain_agents_dir(tmp_path: Path) -> Path:
    """An agents directory with one plain agent folder: no retry of its own, no App."""
    folder = tmp_path / "plain_agent"
    folder.mkdir()
    (folder / "__init__.py").write_text("from . import agent\n")
    (folder / "agent.py").write_text(PLAIN_AGENT)
    return tmp_path


def run_over_api_server(agents_dir: Path, app_name: str, extra_plugins: list[str] | None = None) -> list[Any]:
    """One ``/run`` request to the FastAPI app ``adk api_server`` serves, built by ADK's own factory, in-process."""
    from fastapi.testclient import TestClient
    from google.adk.cli import api_server
    from google.adk.cli.fast_api import get_fast_api_app

    # The server would set a global TracerProvider for the rest of the process (OpenTelemetry
    # allows it once), which changes what every later test sees of spans; not what is tested here.
    setup, api_server._setup_telemetry = api_server._setup_telemetry, lambda *args, **kwargs: None
    try:
        api = get_fast_api_app(
            agents_dir=str(agents_dir),
            web=False,
            session_service_uri="memory://",
            artifact_service_uri="memory://",
            memory_service_uri="memory://",
            use_local_storage=False,
            extra_plugins=extra_plugins,
        )
        with TestClient(api) as client:
            created = client.post(f"/apps/{app_name}/users/u/sessions/s")
            assert created.status_code == 200, created.text
            ran = client.post(
                "/run",
                json={
                    "app_name": app_name,
                    "user_id": "u",
                    "session_id": "s",
                    "new_message": {"role": "user", "parts": [{"text": "hello"}]},
                },
            )
    finally:
        api_server._setup_telemetry = setup
    assert ran.status_code == 200, ran.text
    events: list[Any] = ran.json()
    return events


def answer_text(events: list[Any]) -> str:
    return "".join(part.get("text") or "" for event in events for part in (event.get("content") or {}).get("parts", []))


@pytest.mark.parametrize(
    ("plugin", "fault"),
    [
        # The default policy retries a missing message only: an empty answer.
        ("adk_retry.RetryPlugin", Fault.empty_choices()),
        # A non-default policy through a subclass, and through a module-level instance.
        ("retry_app.plugins.TransientRetryPlugin", Fault.http_error(503)),
        ("retry_app.plugins.transient_retry", Fault.http_error(503)),
    ],
)
def test_extra_plugins_gives_a_plain_agent_retry(
    plugin, fault, server, cli_env, plain_agents_dir, retry_log, monkeypatch
):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # where `retry_app.plugins` lives
    server.push(fault, Fault.ok("Answered after a retry."))
    with no_waits():
        events = run_over_api_server(plain_agents_dir, "plain_agent", extra_plugins=[plugin])
    assert answer_text(events) == "Answered after a retry."
    assert len(server.requests) == 2
    assert any("attempt 1/4" in line for line in messages(retry_log)), messages(retry_log)


def test_without_the_plugin_the_empty_answer_is_not_retried(server, cli_env, plain_agents_dir):
    """The check above is not vacuous: with no plugin, ADK sends once and ends with no answer."""
    server.push(Fault.empty_choices(), Fault.ok("never sent"))
    try:
        text = answer_text(run_over_api_server(plain_agents_dir, "plain_agent"))  # ADK >= 2.4: empty, silently
    except ValueError as error:  # ADK <= 2.3: LiteLlm raises on the missing message
        text = str(error)
    assert "never sent" not in text
    assert len(server.requests) == 1


def test_app_folder_retries_under_api_server(server, cli_env, retry_log):
    server.push(Fault.http_error(503), Fault.ok("Served by the App's plugin."))
    with no_waits():
        events = run_over_api_server(EXAMPLES, "retry_app")
    assert answer_text(events) == "Served by the App's plugin."
    # The App's transient policy owns the retry: the OpenAI SDK's own is off, so 2 requests, not 3.
    assert len(server.requests) == 2
    assert any("ServiceUnavailableError" in line and "attempt 1/4" in line for line in messages(retry_log))


def test_extra_plugins_beside_an_apps_own_plugin_keeps_the_apps_policy(server, cli_env, retry_log):
    server.push(Fault.http_error(503), Fault.ok("The App's policy still rules."))
    with no_waits():
        events = run_over_api_server(EXAMPLES, "retry_app", extra_plugins=["adk_retry.RetryPlugin"])
    assert answer_text(events) == "The App's policy still rules."
    assert len(server.requests) == 2


def test_adk_run_on_the_app_folder_retries_and_logs_to_adks_log_file(server, cli_env, tmp_path):
    # A copy, so that nothing `adk run` writes can land in the repository.
    agents_dir = tmp_path / "agents"
    shutil.copytree(EXAMPLES / "retry_app", agents_dir / "retry_app", ignore=shutil.ignore_patterns("__pycache__"))
    server.push(Fault.http_error(503), Fault.ok("The CLI answer."))
    env = {
        **os.environ,
        **cli_env,
        "ADK_RETRY_NO_WAITS": "1",  # the delay is logged, not slept
        "TMPDIR": str(tmp_path),  # where `adk run` puts its log file
        "PYTHONPATH": os.pathsep.join([str(EXAMPLES.parent), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "google.adk.cli", "run", str(agents_dir / "retry_app"), "hello"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "The CLI answer." in done.stdout
    assert len(server.requests) == 2
    # `adk run` sends every log record to a file (and none to the console); the retry line is there.
    log = (tmp_path / "agents_log" / "agent.latest.log").read_text()
    assert "Model request failed (attempt 1/4)" in log
    assert "Model request failed" not in done.stdout + done.stderr
