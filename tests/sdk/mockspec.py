"""What the demo gateway's built-in mock upstream answers, shared by the SDK suites.

The mock is deterministic, whatever the upstream protocol a model is served through:
- text: `"Mock reply to: <text of the last user message>"`, `[mock:...]` directives removed,
  streamed one word per chunk; `[mock:words=N]` answers `w1 … wN` instead;
- input tokens: Σ over the messages, system prompt included, of (words of its text + 3), where a
  message's text is its string content or its text parts (and tool results) concatenated;
- output tokens: the reply's words (3 for a tool call, +3 with `[mock:thinking]`);
- directives in the last user message: `[mock:status=N]` fails with that HTTP status,
  `[mock:tool_call]` (with tools) calls the first tool with `{"city":"Paris"}`,
  `[mock:stream_error]` sends an in-band error after the first delta, `[mock:cut_after=N]` breaks
  the stream after N chunks, `[mock:cache_read=N]` reports N input tokens read from cache,
  `[mock:fail_first=N]` fails the first N requests with that exact text.
"""

from __future__ import annotations

import re

import pytest

# One public demo model per upstream protocol: the gateway translates every customer protocol to
# each of them, or relays as-is when both sides speak the same one.
DEMO_MODELS = ["demo-gpt", "demo-claude", "demo-qwen", "demo-minimax"]
UPSTREAM_PROTOCOL = {
    "demo-gpt": "openai",
    "demo-claude": "anthropic",
    "demo-qwen": "dashscope",
    "demo-minimax": "minimax",
}
DISPLAY_NAMES = {
    "demo-gpt": "Demo GPT",
    "demo-mini": "Demo Mini",
    "demo-claude": "Demo Claude",
    "demo-qwen": "Demo Qwen",
    "demo-minimax": "Demo MiniMax",
}

GREETING = "Hello there"
GREETING_REPLY = "Mock reply to: Hello there"
WEATHER_QUESTION = "What is the weather in Paris? [mock:tool_call]"
WEATHER_REPLY = "Mock reply to: What is the weather in Paris?"
WEATHER_RESULT = '{"temperature_c": 21, "sky": "clear"}'
TOOL_ARGUMENTS = {"city": "Paris"}
TOOL_CALL_OUTPUT_TOKENS = 3
TOKENS_PER_MESSAGE = 3

# How customers hand a key to the Anthropic SDK. `api_key` is sent as `x-api-key` by most SDK
# versions (as `Authorization: Bearer` by some recent ones, 2.14 included), `auth_token` always as
# `Authorization: Bearer`; an explicit `x-api-key` header is what every `x-api-key` client (older
# SDKs, the curl examples of Anthropic's documentation) sends, whatever the installed SDK does.
ANTHROPIC_AUTH_STYLES = ["api_key", "auth_token", "x-api-key"]

_DIRECTIVE = re.compile(r"\[mock:[^\]]*\]")


def reply_to(text: str) -> str:
    """The mock's answer to a last user message of this text."""
    return "Mock reply to: " + " ".join(_DIRECTIVE.sub(" ", text).split())


def words(text: str) -> int:
    return len(text.split())


def _part_text(part) -> str:
    if isinstance(part, dict):
        text = part.get("text") or ""
        if part.get("type") == "tool_result":
            text += " " + content_text(part.get("content"))
        return text
    return getattr(part, "text", None) or ""


def content_text(content) -> str:
    """A message's text as the mock counts it: a string, or its parts' texts concatenated."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(_part_text(part) for part in content)


def input_tokens(messages, system: str | None = None) -> int:
    """The mock's input count for a conversation (OpenAI, Anthropic or DashScope shapes)."""
    total = 0 if system is None else words(system) + TOKENS_PER_MESSAGE
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else message.content
        total += words(content_text(content)) + TOKENS_PER_MESSAGE
    return total


def model_cases(variants=None, bugs=None) -> list:
    """pytest parameters: every demo model, or every (model, variant) pair when `variants` is a
    list of `(value, id)`. The combinations named in `bugs` (model, or (model, variant id)) are
    kept but skipped, their reason naming the gateway bug; the report lists them."""
    bugs = dict(bugs or {})
    cases = []
    for model in DEMO_MODELS:
        for value, variant in variants or [(None, None)]:
            key = model if variants is None else (model, variant)
            marks = []
            if key in bugs:
                marks.append(pytest.mark.skip(reason="gateway bug: " + bugs.pop(key)))
            values = (model,) if variants is None else (model, value)
            case_id = model if variants is None else f"{model}-{variant}"
            cases.append(pytest.param(*values, id=case_id, marks=marks))
    assert not bugs, f"known bugs name no case: {bugs}"
    return cases


STREAM_VARIANTS = [(False, "plain"), (True, "stream")]

# Gateway bug shared by every SDK (see the report): the in-band error of a *translated* upstream
# stream is passed on with the upstream's own text, where a relayed stream gets the gateway's.
STREAM_ERROR_TEXT_BUG = (
    "an in-band error in a translated upstream stream ({upstream} upstream, `[mock:stream_error]`) "
    "reaches the customer with the upstream's own message {leaked!r} instead of the gateway's "
    "(\"The upstream model failed to answer.\", what a relayed stream, a broken stream or any "
    "non-streaming upstream failure gets)"
)

# How the mock upstream cuts a stream's bytes (issue 11): frame by frame (its default), the whole
# stream in one piece with Content-Length (a buffering proxy, one TCP segment), or at random
# places across event boundaries. A client must read the same stream every way.
STREAM_CUTS = [
    pytest.param("", id="frame-by-frame"),
    pytest.param(" [mock:one_piece]", id="one-piece"),
    pytest.param(" [mock:random_cuts=3]", id="random-cuts"),
]
