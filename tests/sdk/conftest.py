"""Fixtures for the official-SDK conformance suites (`openai`, `anthropic`, `dashscope`).

One real `modelrouter serve --demo` process is spawned for the whole session and serves every
suite (built-in mock upstream, demo tenant with balance, a key we choose). Tests talk to it only
through the official Python SDKs, configured exactly as a customer configures them:
- `openai.OpenAI(base_url="<gateway>/v1", api_key=KEY)`;
- `anthropic.Anthropic(base_url="<gateway>", api_key=KEY)` or `auth_token=KEY`, or an explicit
  `x-api-key` header (see `mockspec.ANTHROPIC_AUTH_STYLES`);
- `dashscope.base_http_api_url = "<gateway>/api/v1"`, `dashscope.api_key = KEY`.

Every chat test runs against each public demo model, one per upstream protocol (`demo_model`), so
each customer protocol is checked translated to every upstream protocol and relayed as-is.

The binary comes from `MODELROUTER_BIN` (default: `target/debug/modelrouter` in the repository).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import anthropic
import dashscope
import openai
import pytest

from mockspec import ANTHROPIC_AUTH_STYLES, DEMO_MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 30.0
SHUTDOWN_DEADLINE_S = 20.0
# A free port picked in Python can, rarely, be taken by someone else before the gateway binds it.
SPAWN_ATTEMPTS = 3

# The gateway is on loopback: never send these requests through a proxy from the environment.
_no_proxy = [p for p in os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",") if p]
for _host in ("127.0.0.1", "localhost"):
    if _host not in _no_proxy:
        _no_proxy.append(_host)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(_no_proxy)

# The SDKs read credentials and endpoints from the environment when not given them: none of a
# developer's own settings may redirect a test or add a second credential to its requests.
for _name in (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_API_KEY_FILE_PATH",
    "DASHSCOPE_HTTP_BASE_URL",
    "DASHSCOPE_WEBSOCKET_BASE_URL",
):
    os.environ.pop(_name, None)


@dataclass
class Gateway:
    root_url: str  # http://127.0.0.1:<port>, what the Anthropic SDK is given
    base_url: str  # http://127.0.0.1:<port>/v1, what the OpenAI SDK is given
    api_key: str
    stdout_path: Path
    stderr_path: Path

    @property
    def dashscope_url(self) -> str:
        """What the DashScope SDK is given as `dashscope.base_http_api_url`."""
        return f"{self.root_url}/api/v1"

    def logs(self, limit: int = 4000) -> str:
        parts = []
        for name, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                text = path.read_text(errors="replace")
            except OSError as error:
                text = f"<unreadable: {error}>"
            parts.append(f"--- gateway {name} (last {limit} chars) ---\n{text[-limit:]}")
        return "\n".join(parts)


def _binary() -> Path:
    configured = os.environ.get("MODELROUTER_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "modelrouter"
    if not path.is_absolute():
        # Relative paths are taken from the current directory first, then from the repository.
        path = path.resolve() if path.exists() else (REPO_ROOT / path)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"modelrouter binary not found at {path}: run `cargo build` and/or set MODELROUTER_BIN",
            pytrace=False,
        )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, then wait; SIGKILL only if it hangs. Returns the exit code, None if it hung."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=SHUTDOWN_DEADLINE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


def _wait_ready(process: subprocess.Popen, root_url: str) -> str | None:
    """Polls /health/ready until 200. Returns None when ready, else why not."""
    deadline = time.monotonic() + READY_DEADLINE_S
    last = "no answer yet"
    # The standard library, not the SDK's HTTP stack: readiness is not what is under test.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"gateway exited early with code {process.returncode}"
        try:
            with opener.open(f"{root_url}/health/ready", timeout=2.0) as response:
                if response.status == 200:
                    return None
                last = f"{response.status} {response.read(200)!r}"
        except urllib.error.HTTPError as error:
            last = f"{error.code} {error.read(200)!r}"
        except (OSError, urllib.error.URLError) as error:
            last = repr(error)
        time.sleep(0.05)  # polling interval, not synchronisation
    return f"/health/ready not 200 within {READY_DEADLINE_S:.0f}s (last: {last})"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory):
    binary = _binary()
    api_key = "sk-sdk-conformance-" + secrets.token_hex(16)
    env = dict(os.environ)
    env["MODELROUTER_DEMO_API_KEY"] = api_key
    # Settings that could point the gateway elsewhere must not leak in from the environment.
    for name in ("MODELROUTER_DATABASE_URL", "MODELROUTER_LISTEN", "MODELROUTER_DATA_DIR"):
        env.pop(name, None)

    failures = []
    for attempt in range(1, SPAWN_ATTEMPTS + 1):
        workdir = tmp_path_factory.mktemp(f"gateway{attempt}")
        data_dir = workdir / "data"
        port = _free_port()
        root_url = f"http://127.0.0.1:{port}"
        stdout_path, stderr_path = workdir / "stdout.log", workdir / "stderr.log"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--data-dir",
                    str(data_dir),
                    "serve",
                    "--demo",
                    "--listen",
                    f"127.0.0.1:{port}",
                ],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        gw = Gateway(root_url, f"{root_url}/v1", api_key, stdout_path, stderr_path)
        problem = _wait_ready(process, root_url)
        if problem is None:
            banner = stdout_path.read_text(errors="replace")
            if f"Model Router demo on {root_url}" not in banner:
                _stop(process)
                pytest.fail(f"unexpected startup banner\n{gw.logs()}", pytrace=False)
            break
        _stop(process)
        failures.append(f"attempt {attempt} on port {port}: {problem}\n{gw.logs()}")
        if "cannot listen" not in gw.logs():
            break  # not a lost port race: retrying would not help
    else:
        process = None
    if problem is not None:
        pytest.fail("gateway did not start:\n" + "\n".join(failures), pytrace=False)

    yield gw

    code = _stop(process)
    if code is None:
        pytest.fail(
            f"gateway did not exit within {SHUTDOWN_DEADLINE_S:.0f}s of SIGTERM\n{gw.logs()}",
            pytrace=False,
        )
    if code != 0:
        pytest.fail(f"gateway exited with code {code} after SIGTERM\n{gw.logs()}", pytrace=False)


@pytest.fixture(scope="session")
def base_url(gateway: Gateway) -> str:
    return gateway.base_url


@pytest.fixture(scope="session")
def api_key(gateway: Gateway) -> str:
    return gateway.api_key


@pytest.fixture
def make_client(base_url: str, api_key: str):
    """Builds SDK clients against the gateway; closes them after the test."""
    clients = []

    def make(**overrides) -> openai.OpenAI:
        options = {"base_url": base_url, "api_key": api_key, "max_retries": 0, "timeout": 30.0}
        options.update(overrides)
        client = openai.OpenAI(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client) -> openai.OpenAI:
    """A client with the demo key and no automatic retries (fast, deterministic errors)."""
    return make_client()


@pytest.fixture(params=DEMO_MODELS)
def demo_model(request) -> str:
    """Each public demo model in turn: one per upstream protocol, all served by the mock."""
    return request.param


# Anthropic ---------------------------------------------------------------------------------------


@pytest.fixture
def make_anthropic(gateway: Gateway):
    """Builds `anthropic.Anthropic` clients against the gateway; closes them after the test.

    By default the key goes in `api_key`; see ANTHROPIC_AUTH_STYLES for the other ways.
    """
    clients = []

    def make(**overrides) -> anthropic.Anthropic:
        options = {
            "base_url": gateway.root_url,
            "api_key": gateway.api_key,
            "max_retries": 0,
            "timeout": 30.0,
        }
        options.update(overrides)
        client = anthropic.Anthropic(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def anthropic_client(make_anthropic) -> anthropic.Anthropic:
    """`Anthropic(base_url=<gateway>, api_key=KEY, max_retries=0)`."""
    return make_anthropic()


@pytest.fixture
def anthropic_bearer_client(make_anthropic, api_key: str) -> anthropic.Anthropic:
    """`Anthropic(base_url=<gateway>, auth_token=KEY, max_retries=0)`: the key as a Bearer token."""
    return make_anthropic(api_key=None, auth_token=api_key)


@pytest.fixture
def anthropic_with_key(make_anthropic):
    """`make(style, key)`: an Anthropic client presenting `key` in one of ANTHROPIC_AUTH_STYLES."""

    def make(style: str, key: str) -> anthropic.Anthropic:
        assert style in ANTHROPIC_AUTH_STYLES, style
        if style == "api_key":
            return make_anthropic(api_key=key)
        if style == "auth_token":
            return make_anthropic(api_key=None, auth_token=key)
        if style == "x-api-key":
            return make_anthropic(api_key=None, default_headers={"x-api-key": key})
        raise ValueError(style)

    return make


# DashScope ---------------------------------------------------------------------------------------


@pytest.fixture
def dashscope_sdk(gateway: Gateway, monkeypatch: pytest.MonkeyPatch):
    """The `dashscope` module configured as its documentation says, through its module globals
    (restored after the test): `base_http_api_url` and `api_key`."""
    monkeypatch.setattr(dashscope, "base_http_api_url", gateway.dashscope_url)
    monkeypatch.setattr(dashscope, "api_key", gateway.api_key)
    return dashscope


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of the gateway's logs to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        gw = getattr(item, "funcargs", {}).get("gateway")
        if isinstance(gw, Gateway):
            report.sections.append(("gateway logs", gw.logs()))
