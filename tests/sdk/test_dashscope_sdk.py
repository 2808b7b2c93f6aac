"""Conformance of the gateway with the official `dashscope` Python SDK, used as customers use it:
`dashscope.base_http_api_url = "<gateway>/api/v1"`, `dashscope.api_key = KEY`, then
`dashscope.Generation.call(...)`.

The SDK does not raise on API errors: every call returns (or, streamed, yields) a
`GenerationResponse` with `status_code`, `code`, `message`, `request_id`, `output` and `usage`,
and a user checks `status_code` and `code`. The tests assert on exactly those.

Every chat test runs once per public demo model (`demo_model`), one per upstream protocol: the
DashScope native API relayed as-is (`demo-qwen`) and translated to OpenAI, Anthropic and MiniMax.
What the mock answers is described in `mockspec`.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import dashscope
import pytest

from mockspec import (
    STREAM_CUTS,
    GREETING,
    GREETING_REPLY,
    STREAM_ERROR_TEXT_BUG,
    STREAM_VARIANTS,
    TOOL_ARGUMENTS,
    TOOL_CALL_OUTPUT_TOKENS,
    WEATHER_QUESTION,
    WEATHER_REPLY,
    WEATHER_RESULT,
    input_tokens,
    model_cases,
    words,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
INCREMENTAL_VARIANTS = [True, False]
INCREMENTAL_IDS = ["incremental", "cumulative"]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def generate(model: str, messages: list, **options):
    """`Generation.call` in message format, as the DashScope documentation shows it."""
    return dashscope.Generation.call(
        model=model, messages=messages, result_format="message", **options
    )


def stream(model: str, messages: list, incremental: bool = True, **options) -> list:
    """A streamed call, read to its end: every response the SDK yields."""
    responses = list(
        generate(model, messages, stream=True, incremental_output=incremental, **options)
    )
    assert responses, "the stream yielded nothing"
    return responses


def assert_ok(response):
    assert response.status_code == HTTPStatus.OK, (
        response.status_code,
        response.code,
        response.message,
    )
    assert not response.code
    assert response.request_id


def choice(response):
    assert response.output is not None
    assert len(response.output.choices) == 1
    return response.output.choices[0]


def content(response) -> str:
    return choice(response).message.content or ""


def assert_error(response, status: int, code: str):
    """What a DashScope user checks: `status_code` and `code`, and a message to read."""
    assert response.status_code == status, (response.status_code, response.code, response.message)
    assert response.code == code
    assert isinstance(response.message, str) and response.message
    # The mock upstream's own words never reach the customer.
    assert "mock" not in response.message.lower(), response.message
    assert response.request_id
    assert response.output is None


def assert_final_usage(response, input_count: int, output_count: int):
    usage = response.usage
    assert usage.input_tokens == input_count
    assert usage.output_tokens == output_count
    assert usage.total_tokens == input_count + output_count


# 1. Generation ---------------------------------------------------------------------------------


def test_generation(dashscope_sdk, demo_model):
    response = generate(demo_model, user(GREETING))

    assert_ok(response)
    answer = choice(response)
    assert answer.message.role == "assistant"
    assert answer.message.content == GREETING_REPLY
    assert answer.finish_reason == "stop"
    assert not answer.message.get("tool_calls")
    assert_final_usage(response, words(GREETING) + 3, words(GREETING_REPLY))


@pytest.mark.parametrize("prompt", [False, True], ids=["messages", "prompt"])
def test_generation_text_format(dashscope_sdk, demo_model, prompt):
    """`result_format="text"` (the classic default): the answer in `output.text`; `prompt=` is one
    user message."""
    if prompt:
        response = dashscope.Generation.call(model=demo_model, prompt=GREETING)
    else:
        response = dashscope.Generation.call(
            model=demo_model, messages=user(GREETING), result_format="text"
        )

    assert_ok(response)
    assert response.output.text == GREETING_REPLY
    assert response.output.finish_reason == "stop"
    assert not response.output.choices
    assert_final_usage(response, 5, 5)


def test_generation_counts_every_message(dashscope_sdk, demo_model):
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "First question here"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "And a second one"},
    ]
    response = generate(demo_model, messages)

    assert_ok(response)
    assert content(response) == "Mock reply to: And a second one"
    assert_final_usage(response, input_tokens(messages), 7)
    assert response.usage.input_tokens == 26


def test_generation_max_tokens_truncates(dashscope_sdk, demo_model):
    response = generate(demo_model, user(GREETING), max_tokens=2)

    assert_ok(response)
    assert content(response) == "Mock reply"
    assert choice(response).finish_reason == "length"
    assert response.usage.output_tokens == 2


# 2. Streaming ----------------------------------------------------------------------------------


def test_stream_incremental(dashscope_sdk, demo_model):
    """`incremental_output=True`: each event carries only the new text."""
    responses = stream(demo_model, user(GREETING), incremental=True)

    for response in responses:
        assert_ok(response)
    pieces = [content(r) for r in responses]
    assert "".join(pieces) == GREETING_REPLY
    # Word by word, not one buffered blob.
    assert [p for p in pieces if p] == ["Mock ", "reply ", "to: ", "Hello ", "there"]
    finishes = [choice(r).finish_reason for r in responses]
    assert finishes[-1] == "stop"
    assert all(f in (None, "null") for f in finishes[:-1]), finishes
    assert_final_usage(responses[-1], 5, 5)


@pytest.mark.parametrize("cut", STREAM_CUTS)
def test_stream_reads_the_same_however_the_upstream_cuts_it(dashscope_sdk, demo_model, cut):
    """A stream the upstream sends in one piece, or cut anywhere, reaches the SDK whole."""
    responses = stream(demo_model, user(GREETING + cut), incremental=True)

    for response in responses:
        assert_ok(response)
    assert "".join(content(r) for r in responses) == GREETING_REPLY
    assert choice(responses[-1]).finish_reason == "stop"
    assert responses[-1].usage.output_tokens == 5


@pytest.mark.parametrize("flag", ["explicit", "default"])
def test_stream_cumulative(dashscope_sdk, demo_model, flag):
    """`incremental_output=False`, DashScope's documented default: each event carries the whole
    text so far."""
    if flag == "explicit":
        responses = stream(demo_model, user(GREETING), incremental=False)
    else:
        responses = list(generate(demo_model, user(GREETING), stream=True))

    for response in responses:
        assert_ok(response)
    texts = [content(r) for r in responses]
    assert texts[-1] == GREETING_REPLY
    for before, after in zip(texts, texts[1:]):
        assert after.startswith(before), texts
    assert all(GREETING_REPLY.startswith(text) for text in texts), texts
    # It grew word by word.
    assert len({text.strip() for text in texts if text}) == words(GREETING_REPLY), texts
    assert choice(responses[-1]).finish_reason == "stop"
    assert_final_usage(responses[-1], 5, 5)


def test_stream_text_format(dashscope_sdk, demo_model):
    """A streamed `prompt=` call in text format: `output.text`, cumulative by default."""
    responses = list(dashscope.Generation.call(model=demo_model, prompt=GREETING, stream=True))

    for response in responses:
        assert_ok(response)
    texts = [r.output.text or "" for r in responses]
    assert texts[-1] == GREETING_REPLY
    assert all(GREETING_REPLY.startswith(text) for text in texts), texts
    assert responses[-1].output.finish_reason == "stop"
    assert_final_usage(responses[-1], 5, 5)


@pytest.mark.parametrize("incremental", INCREMENTAL_VARIANTS, ids=INCREMENTAL_IDS)
def test_stream_in_band_error_is_reported(dashscope_sdk, demo_model, incremental):
    """An upstream error after the first delta: the stream ends on an error response (not on a
    normal finish), after the text that did arrive."""
    responses = stream(demo_model, user("one two three [mock:stream_error]"), incremental)

    *before, last = responses
    assert before, "no content arrived before the error"
    for response in before:
        assert_ok(response)
        assert choice(response).finish_reason in (None, "null")
    assert content(before[-1]).strip() == "Mock"
    assert last.status_code != HTTPStatus.OK
    assert last.code and last.message
    assert last.output is None


@pytest.mark.parametrize(
    "demo_model",
    model_cases(
        ),
)
def test_stream_error_message_is_the_gateways(dashscope_sdk, demo_model):
    """A failure mid-stream reads like any other upstream failure: the gateway's message, never
    the upstream's own words."""
    failure = generate(demo_model, user("Hi [mock:status=500]"))
    assert failure.code == "InternalError"
    last = stream(demo_model, user("one two three [mock:stream_error]"))[-1]
    assert last.code == "InternalError"
    assert last.message == failure.message


def test_stream_cut_is_reported(dashscope_sdk, demo_model):
    """An upstream stream that breaks midway ends on an error response, not a short answer."""
    responses = stream(demo_model, user("one two three four [mock:cut_after=2]"))

    *before, last = responses
    assert "".join(content(r) for r in before) == "Mock reply "
    assert all(r.status_code == HTTPStatus.OK for r in before)
    assert last.status_code != HTTPStatus.OK
    assert last.code and last.message


# 3. Tool calls ---------------------------------------------------------------------------------


def tool_message(call: dict) -> dict:
    """The tool's answer, sent back the DashScope way: a `tool` message naming the call."""
    return {
        "role": "tool",
        "content": WEATHER_RESULT,
        "tool_call_id": call["id"],
        "name": call["function"]["name"],
    }


def assert_weather_call(calls) -> dict:
    assert calls and len(calls) == 1, calls
    call = calls[0]
    assert call["id"]
    assert call.get("type", "function") == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == TOOL_ARGUMENTS
    return call


def test_tool_call_round_trip(dashscope_sdk, demo_model):
    messages = user(WEATHER_QUESTION)
    response = generate(demo_model, messages, tools=[WEATHER_TOOL, CLOCK_TOOL])

    assert_ok(response)
    answer = choice(response)
    assert answer.finish_reason == "tool_calls"
    assert answer.message.role == "assistant"
    assert not answer.message.content
    call = assert_weather_call(answer.message.tool_calls)
    assert_final_usage(response, input_tokens(messages), TOOL_CALL_OUTPUT_TOKENS)

    # The documented loop: append the assistant message as returned, then the tool's answer.
    messages = messages + [answer.message, tool_message(call)]
    follow_up = generate(demo_model, messages)
    assert_ok(follow_up)
    assert content(follow_up) == WEATHER_REPLY
    assert choice(follow_up).finish_reason == "stop"
    # Proves the gateway passed on all three messages (tool call and tool result too).
    assert follow_up.usage.input_tokens == input_tokens(messages)


def accumulate_tool_calls(responses, incremental: bool) -> list[dict]:
    """What a DashScope user does with streamed tool calls: concatenate the pieces per `index`
    (incremental), or take the latest complete list (cumulative)."""
    calls: dict[int, dict] = {}
    for response in responses:
        for delta in choice(response).message.get("tool_calls") or []:
            index = delta.get("index", 0)
            function = delta.get("function") or {}
            if not incremental:
                calls[index] = {
                    "id": delta.get("id"),
                    "type": delta.get("type"),
                    "function": {
                        "name": function.get("name"),
                        "arguments": function.get("arguments", ""),
                    },
                }
                continue
            call = calls.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            call["id"] = delta.get("id") or call["id"]
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[index] for index in sorted(calls)]


@pytest.mark.parametrize("incremental", INCREMENTAL_VARIANTS, ids=INCREMENTAL_IDS)
def test_tool_call_round_trip_streaming(dashscope_sdk, demo_model, incremental):
    messages = user(WEATHER_QUESTION)
    responses = stream(demo_model, messages, incremental, tools=[WEATHER_TOOL])

    for response in responses:
        assert_ok(response)
    assert choice(responses[-1]).finish_reason == "tool_calls"
    call = assert_weather_call(accumulate_tool_calls(responses, incremental))
    assert_final_usage(responses[-1], input_tokens(messages), TOOL_CALL_OUTPUT_TOKENS)

    assistant = {"role": "assistant", "content": "", "tool_calls": [call]}
    messages = messages + [assistant, tool_message(call)]
    follow_up = stream(demo_model, messages, incremental)
    for response in follow_up:
        assert_ok(response)
    texts = [content(r) for r in follow_up]
    assert ("".join(texts) if incremental else texts[-1]) == WEATHER_REPLY
    assert choice(follow_up[-1]).finish_reason == "stop"
    assert follow_up[-1].usage.input_tokens == input_tokens(messages)


# 4. Errors -------------------------------------------------------------------------------------

# A DashScope upstream reports a failure of a streaming request inside an HTTP 200 event stream.
QWEN_STREAM_ERROR_BUG = (
    "a streaming request to demo-qwen (DashScope upstream, relayed) whose upstream fails with "
    "{status} gets HTTP 200 text/event-stream with one in-band `event:error` "
    '(`:HTTP_STATUS/{status}` comment, `data:{{"code":"{code}",...}}`) instead of the HTTP '
    "{status} JSON error every other upstream gets; the dashscope SDK reads no status from it "
    "and reports status_code 400 (code {code}) instead of {status}"
)


def call_and_read(model: str, text: str, stream_it: bool, **options):
    """One call as a user makes it; for a stream, the last response yielded (where an error
    lands)."""
    if stream_it:
        return stream(model, user(text), **options)[-1]
    return generate(model, user(text), **options)


@pytest.mark.parametrize(
    "demo_model,streamed",
    model_cases(
        STREAM_VARIANTS,
        ),
)
def test_upstream_rate_limit(dashscope_sdk, demo_model, streamed):
    response = call_and_read(demo_model, "Hi [mock:status=429]", streamed)
    assert_error(response, 429, "Throttling.RateQuota")


@pytest.mark.parametrize(
    "demo_model,streamed",
    model_cases(
        STREAM_VARIANTS,
        ),
)
def test_upstream_server_error(dashscope_sdk, demo_model, streamed):
    response = call_and_read(demo_model, "Hi [mock:status=500]", streamed)
    assert_error(response, 500, "InternalError")


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_invalid_key(dashscope_sdk, demo_model, streamed):
    response = call_and_read(
        demo_model, GREETING, streamed, api_key="sk-not-a-real-key-0123456789abcdef"
    )
    assert_error(response, 401, "InvalidApiKey")


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_unknown_model(dashscope_sdk, streamed):
    response = call_and_read("no-such-model", GREETING, streamed)
    assert_error(response, 404, "ModelNotFound")
    assert "no-such-model" in response.message


# 5. Async --------------------------------------------------------------------------------------


def test_async_generation(dashscope_sdk):
    """`AioGeneration`: concurrent calls to two upstream protocols, one of them streamed."""

    async def scenario():
        async def streamed():
            responses = await dashscope.AioGeneration.call(
                model="demo-claude",
                messages=user(GREETING),
                result_format="message",
                stream=True,
                incremental_output=True,
            )
            return [response async for response in responses]

        try:
            return await asyncio.gather(
                dashscope.AioGeneration.call(
                    model="demo-minimax", messages=user(GREETING), result_format="message"
                ),
                streamed(),
            )
        finally:
            # The SDK's shared aiohttp session belongs to this event loop: close it with it.
            await dashscope.close_shared_aio_session()

    plain, responses = asyncio.run(scenario())
    assert_ok(plain)
    assert content(plain) == GREETING_REPLY
    assert "".join(content(r) for r in responses) == GREETING_REPLY
    assert_final_usage(responses[-1], 5, 5)
