"""Conformance of the gateway with the official `anthropic` Python SDK, used as customers use it:
`Anthropic(base_url=<gateway root>, api_key=KEY)` (or `auth_token=KEY`) and the Messages API.

Every chat test runs once per public demo model (`demo_model`), one per upstream protocol: the
Anthropic Messages API relayed as-is (`demo-claude`) and translated to OpenAI, DashScope and
MiniMax. What the mock answers is described in `mockspec`.
"""

from __future__ import annotations

import asyncio
import datetime
import json

import anthropic
import pytest

from mockspec import (
    STREAM_CUTS,
    ANTHROPIC_AUTH_STYLES,
    DEMO_MODELS,
    DISPLAY_NAMES,
    GREETING,
    GREETING_REPLY,
    STREAM_ERROR_TEXT_BUG,
    STREAM_VARIANTS,
    TOOL_ARGUMENTS,
    TOOL_CALL_OUTPUT_TOKENS,
    UPSTREAM_PROTOCOL,
    WEATHER_QUESTION,
    WEATHER_REPLY,
    WEATHER_RESULT,
    input_tokens,
    model_cases,
    words,
)

MAX_TOKENS = 256

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLOCK_TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def text_of(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def tool_uses(message) -> list:
    return [block for block in message.content if block.type == "tool_use"]


def tool_result(tool_use_id: str) -> dict:
    """The tool's answer, sent back the Anthropic way: a user turn of `tool_result` blocks."""
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": WEATHER_RESULT}],
    }


def assert_error(error: anthropic.APIStatusError, status: int, kind: str):
    """The SDK exposes the gateway's Anthropic error envelope as `.body`."""
    assert error.status_code == status
    body = error.body
    assert isinstance(body, dict), body
    assert body.get("type") == "error", body
    assert body["error"]["type"] == kind, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    # The message a user reads in the exception text is the gateway's.
    assert message in str(error)
    # The mock upstream's own words never reach the customer.
    assert "mock" not in message.lower(), message


def create_and_read(client, model: str, text: str, stream: bool):
    """A request as a user makes it; a streamed answer is read to its end."""
    result = client.messages.create(
        model=model, max_tokens=MAX_TOKENS, messages=user(text), stream=stream
    )
    if stream:
        for _ in result:
            pass


def assert_retry_hint(error: anthropic.APIStatusError, retry: bool):
    assert error.response.headers.get("x-should-retry") == ("true" if retry else "false")


# 1. Messages -----------------------------------------------------------------------------------


def test_message(anthropic_client, demo_model):
    message = anthropic_client.messages.create(
        model=demo_model, max_tokens=MAX_TOKENS, messages=user(GREETING)
    )

    assert isinstance(message, anthropic.types.Message)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == demo_model
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == GREETING_REPLY
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens == words(GREETING) + 3 == 5
    assert message.usage.output_tokens == words(GREETING_REPLY) == 5
    assert not message.usage.cache_read_input_tokens
    assert not message.usage.cache_creation_input_tokens


def test_message_counts_system_and_every_turn(anthropic_client, demo_model):
    system = "You are a terse assistant."
    messages = [
        {"role": "user", "content": "First question here"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": [{"type": "text", "text": "And a second one"}]},
    ]
    message = anthropic_client.messages.create(
        model=demo_model, max_tokens=MAX_TOKENS, system=system, messages=messages
    )

    assert text_of(message) == "Mock reply to: And a second one"
    assert message.usage.input_tokens == input_tokens(messages, system=system) == 26
    assert message.usage.output_tokens == 7


def test_message_max_tokens_truncates(anthropic_client, demo_model):
    message = anthropic_client.messages.create(
        model=demo_model, max_tokens=2, messages=user(GREETING)
    )

    assert text_of(message) == "Mock reply"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_input_tokens_are_the_uncached_input(anthropic_client, demo_model, stream):
    """Anthropic's `input_tokens` excludes cache reads, which come in `cache_read_input_tokens`,
    whatever way the upstream reports them."""
    messages = user("Hello there friend [mock:cache_read=4]")
    total = input_tokens(messages)
    # MiniMax's API reports no cache reads: everything is uncached input there.
    cached = 0 if UPSTREAM_PROTOCOL[demo_model] == "minimax" else 4
    if stream:
        with anthropic_client.messages.stream(
            model=demo_model, max_tokens=MAX_TOKENS, messages=messages
        ) as events:
            message = events.get_final_message()
    else:
        message = anthropic_client.messages.create(
            model=demo_model, max_tokens=MAX_TOKENS, messages=messages
        )

    assert text_of(message) == "Mock reply to: Hello there friend"
    assert message.usage.input_tokens == total - cached
    assert (message.usage.cache_read_input_tokens or 0) == cached
    assert message.usage.output_tokens == 6


def assert_key_sent(sent, style: str, key: str):
    """The SDK really presented the key the way the style says."""
    bearer = sent.get("authorization") == f"Bearer {key}"
    header = sent.get("x-api-key") == key
    if style == "api_key":
        assert bearer != header, dict(sent)  # one of them, whichever this SDK version uses
    elif style == "auth_token":
        assert bearer and "x-api-key" not in sent
    else:
        assert header and "authorization" not in sent


@pytest.mark.parametrize("auth", ANTHROPIC_AUTH_STYLES)
def test_every_way_of_passing_the_key(anthropic_with_key, api_key, demo_model, auth):
    """`Anthropic(api_key=...)`, `Anthropic(auth_token=...)` (`Authorization: Bearer`) and an
    `x-api-key` header are all accepted."""
    client = anthropic_with_key(auth, api_key)
    raw = client.messages.with_raw_response.create(
        model=demo_model, max_tokens=MAX_TOKENS, messages=user(GREETING)
    )

    assert_key_sent(raw.http_request.headers, auth, api_key)
    assert raw.status_code == 200
    message = raw.parse()
    assert text_of(message) == GREETING_REPLY
    assert message.usage.output_tokens == 5

    with client.messages.stream(
        model=demo_model, max_tokens=MAX_TOKENS, messages=user(GREETING)
    ) as stream:
        assert stream.get_final_text() == GREETING_REPLY


# 2. Streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", STREAM_CUTS)
def test_stream_reads_the_same_however_the_upstream_cuts_it(anthropic_client, demo_model, cut):
    """A stream the upstream sends in one piece, or cut anywhere, reaches the SDK whole."""
    with anthropic_client.messages.stream(
        model=demo_model, max_tokens=MAX_TOKENS, messages=user(GREETING + cut)
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == GREETING_REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5


def test_stream_helper(anthropic_client, demo_model):
    """`client.messages.stream(...)`: text as it comes, then the accumulated final message."""
    with anthropic_client.messages.stream(
        model=demo_model, max_tokens=MAX_TOKENS, messages=user(GREETING)
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        final_text = stream.get_final_text()

    # Word by word, not one buffered blob.
    assert pieces == ["Mock ", "reply ", "to: ", "Hello ", "there"]
    assert final_text == GREETING_REPLY
    assert final.model == demo_model
    assert final.role == "assistant"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == GREETING_REPLY
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 5
    assert final.usage.output_tokens == 5


def test_stream_raw_events(anthropic_client, demo_model):
    """`messages.create(stream=True)`: the documented event sequence, parsed by the SDK."""
    events = list(
        anthropic_client.messages.create(
            model=demo_model, max_tokens=MAX_TOKENS, messages=user(GREETING), stream=True
        )
    )
    types = [event.type for event in events]

    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types[1:-2] == ["content_block_start"] + ["content_block_delta"] * 5 + [
        "content_block_stop"
    ]
    start = events[0].message
    assert start.model == demo_model
    assert start.role == "assistant"
    assert start.content == []
    block = events[1]
    assert block.index == 0 and block.content_block.type == "text"
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert all(d.type == "text_delta" for d in deltas)
    assert "".join(d.text for d in deltas) == GREETING_REPLY
    assert all(e.index == 0 for e in events if e.type.startswith("content_block"))

    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 5
    # The input count arrives in message_start, or (when only known at the end) in message_delta,
    # which the SDK's own accumulator also reads.
    final_input = delta.usage.input_tokens
    if final_input is None:
        final_input = start.usage.input_tokens
    assert final_input == 5


def test_thinking(anthropic_client, demo_model):
    """Reasoning arrives as thinking blocks before the text, plainly and streamed, and a turn
    carrying them is accepted back."""
    question = user("Hello there [mock:thinking]")
    thinking = {"type": "enabled", "budget_tokens": 1024}
    message = anthropic_client.messages.create(
        model=demo_model, max_tokens=MAX_TOKENS, thinking=thinking, messages=question
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Thinking about it."
    assert message.content[1].text == GREETING_REPLY
    assert message.usage.output_tokens == 5 + 3

    with anthropic_client.messages.stream(
        model=demo_model, max_tokens=MAX_TOKENS, thinking=thinking, messages=question
    ) as stream:
        thought = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert thought == "Thinking about it."
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].text == GREETING_REPLY
    assert final.usage.output_tokens == 8

    follow_up = question + [
        {"role": "assistant", "content": final.content},
        {"role": "user", "content": "And now?"},
    ]
    answer = anthropic_client.messages.create(
        model=demo_model, max_tokens=MAX_TOKENS, thinking=thinking, messages=follow_up
    )
    assert text_of(answer) == "Mock reply to: And now?"
    assert answer.stop_reason == "end_turn"


@pytest.mark.parametrize("helper", [True, False], ids=["helper", "raw"])
def test_stream_in_band_error_raises(anthropic_client, demo_model, helper):
    """An upstream error after the first delta surfaces as an SDK exception, not a silent end."""
    request = dict(
        model=demo_model,
        max_tokens=MAX_TOKENS,
        messages=user("one two three [mock:stream_error]"),
    )
    received = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        if helper:
            with anthropic_client.messages.stream(**request) as stream:
                for text in stream.text_stream:
                    received.append(text)
        else:
            for event in anthropic_client.messages.create(stream=True, **request):
                if event.type == "content_block_delta":
                    received.append(event.delta.text)
                assert event.type != "message_stop", "the stream ended as if complete"
    assert received == ["Mock "]
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] and body["error"]["message"]


def test_stream_cut_raises(anthropic_client, demo_model):
    """An upstream stream that breaks midway reaches the SDK as an error, not a short answer."""
    received = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with anthropic_client.messages.stream(
            model=demo_model,
            max_tokens=MAX_TOKENS,
            messages=user("one two three four [mock:cut_after=2]"),
        ) as stream:
            received.extend(stream.text_stream)
    assert "".join(received) == "Mock reply "
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["message"]


@pytest.mark.parametrize(
    "demo_model",
    model_cases(
        ),
)
def test_stream_error_message_is_the_gateways(anthropic_client, demo_model):
    """A failure mid-stream reads like any other upstream failure: the gateway's message, never
    the upstream's own words."""
    with pytest.raises(anthropic.InternalServerError) as failure:
        create_and_read(anthropic_client, demo_model, "Hi [mock:status=500]", False)
    with pytest.raises(anthropic.APIStatusError) as caught:
        create_and_read(anthropic_client, demo_model, "one two three [mock:stream_error]", True)
    assert caught.value.body["error"]["message"] == failure.value.body["error"]["message"]


# 3. Tool use -----------------------------------------------------------------------------------


def assert_weather_call(message):
    assert message.stop_reason == "tool_use"
    calls = tool_uses(message)
    assert len(calls) == 1
    call = calls[0]
    assert call.id
    assert call.name == "get_weather"
    assert call.input == TOOL_ARGUMENTS
    assert message.usage.output_tokens == TOOL_CALL_OUTPUT_TOKENS
    return call


def test_tool_use_round_trip(anthropic_client, demo_model):
    messages = user(WEATHER_QUESTION)
    message = anthropic_client.messages.create(
        model=demo_model, max_tokens=MAX_TOKENS, messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL]
    )
    call = assert_weather_call(message)
    assert message.usage.input_tokens == input_tokens(messages)

    # The documented loop: the assistant turn as returned, then the tool result in a user turn.
    messages = messages + [
        {"role": "assistant", "content": message.content},
        tool_result(call.id),
    ]
    answer = anthropic_client.messages.create(
        model=demo_model, max_tokens=MAX_TOKENS, messages=messages
    )
    assert [block.type for block in answer.content] == ["text"]
    assert text_of(answer) == WEATHER_REPLY
    assert answer.stop_reason == "end_turn"
    # Proves the gateway passed on all three turns (tool use and tool result too).
    assert answer.usage.input_tokens == input_tokens(messages)


def test_tool_use_round_trip_streaming(anthropic_client, demo_model):
    messages = user(WEATHER_QUESTION)
    with anthropic_client.messages.stream(
        model=demo_model, max_tokens=MAX_TOKENS, messages=messages, tools=[WEATHER_TOOL]
    ) as stream:
        partial_json = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()

    assert json.loads("".join(partial_json)) == TOOL_ARGUMENTS
    call = assert_weather_call(final)
    assert final.usage.input_tokens == input_tokens(messages)

    messages = messages + [
        {"role": "assistant", "content": final.content},
        tool_result(call.id),
    ]
    with anthropic_client.messages.stream(
        model=demo_model, max_tokens=MAX_TOKENS, messages=messages
    ) as stream:
        text = stream.get_final_text()
        answer = stream.get_final_message()
    assert text == WEATHER_REPLY
    assert answer.stop_reason == "end_turn"
    assert answer.usage.input_tokens == input_tokens(messages)


# 4. Errors -------------------------------------------------------------------------------------

# A DashScope upstream reports a failure of a streaming request inside an HTTP 200 event stream.
QWEN_STREAM_ERROR_BUG = (
    "a streaming request to demo-qwen (DashScope upstream) whose upstream fails with {status} "
    "gets HTTP 200 text/event-stream with one in-band `event: error` "
    '(`{{"error":{{"message":"{upstream}: mock fault {status}","type":"{kind}"}}}}`) instead of '
    "HTTP {expected}; the SDK raises a generic anthropic.APIStatusError with status_code 200 "
    "while iterating, not {sdk_error}, and the upstream's own message leaks"
)


@pytest.mark.parametrize(
    "demo_model,stream",
    model_cases(
        STREAM_VARIANTS,
        ),
)
def test_upstream_rate_limit(anthropic_client, demo_model, stream):
    with pytest.raises(anthropic.RateLimitError) as caught:
        create_and_read(anthropic_client, demo_model, "Hi [mock:status=429]", stream)
    assert_error(caught.value, 429, "rate_limit_error")
    assert_retry_hint(caught.value, True)


@pytest.mark.parametrize(
    "demo_model,stream",
    model_cases(
        STREAM_VARIANTS,
        ),
)
def test_upstream_server_error(anthropic_client, demo_model, stream):
    with pytest.raises(anthropic.InternalServerError) as caught:
        create_and_read(anthropic_client, demo_model, "Hi [mock:status=500]", stream)
    assert_error(caught.value, 502, "api_error")
    assert_retry_hint(caught.value, True)


@pytest.mark.parametrize("auth", ANTHROPIC_AUTH_STYLES)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_invalid_key(anthropic_with_key, demo_model, auth, stream):
    client = anthropic_with_key(auth, "sk-not-a-real-key-0123456789abcdef")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        create_and_read(client, demo_model, GREETING, stream)
    assert_error(caught.value, 401, "authentication_error")
    assert_retry_hint(caught.value, False)

    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.count_tokens(model=demo_model, messages=user(GREETING))
    assert_error(caught.value, 401, "authentication_error")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_unknown_model(anthropic_client, stream):
    with pytest.raises(anthropic.NotFoundError) as caught:
        create_and_read(anthropic_client, "no-such-model", GREETING, stream)
    assert_error(caught.value, 404, "not_found_error")
    assert "no-such-model" in caught.value.body["error"]["message"]


def test_bad_request(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(model=DEMO_MODELS[0], max_tokens=MAX_TOKENS, messages=[])
    assert_error(caught.value, 400, "invalid_request_error")


# 5. Token counting and models ------------------------------------------------------------------


def test_count_tokens(anthropic_client, demo_model):
    short = anthropic_client.messages.count_tokens(model=demo_model, messages=user(GREETING))
    assert isinstance(short.input_tokens, int) and short.input_tokens > 0

    longer = anthropic_client.messages.count_tokens(
        model=demo_model,
        system="You are a terse assistant.",
        messages=user("Hello there, tell me a long story about the sea and its ships"),
        tools=[WEATHER_TOOL],
    )
    assert longer.input_tokens > short.input_tokens

    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client.messages.count_tokens(model="no-such-model", messages=user(GREETING))
    assert_error(caught.value, 404, "not_found_error")


def test_models_list(anthropic_bearer_client, demo_model):
    """`client.models.list()` (here with `auth_token`): the gateway answers in Anthropic's list
    shape, as the SDK's `anthropic-version` header asks."""
    models = list(anthropic_bearer_client.models.list())
    by_id = {model.id: model for model in models}

    assert set(DISPLAY_NAMES) <= set(by_id)
    model = by_id[demo_model]
    assert model.type == "model"
    assert model.display_name == DISPLAY_NAMES[demo_model]
    assert isinstance(model.created_at, datetime.datetime)
    assert by_id["demo-claude"].display_name == "Demo Claude"

    one = anthropic_bearer_client.models.retrieve(demo_model)
    assert (one.id, one.type, one.display_name) == (demo_model, "model", DISPLAY_NAMES[demo_model])


def test_request_id_is_exposed(anthropic_client):
    message = anthropic_client.messages.create(
        model="demo-claude", max_tokens=MAX_TOKENS, messages=user(GREETING)
    )
    assert message._request_id and message._request_id.startswith("req_")

    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client.messages.create(
            model="demo-claude", max_tokens=MAX_TOKENS, messages=user("Hi [mock:status=429]")
        )
    assert caught.value.request_id == caught.value.body["request_id"]


# 6. Async client -------------------------------------------------------------------------------


def test_async_client(gateway):
    """`AsyncAnthropic`: concurrent calls to two upstream protocols, one of them streamed."""

    async def scenario():
        async with anthropic.AsyncAnthropic(
            base_url=gateway.root_url, api_key=gateway.api_key, max_retries=0
        ) as client:

            async def streamed():
                async with client.messages.stream(
                    model="demo-qwen", max_tokens=MAX_TOKENS, messages=user(GREETING)
                ) as stream:
                    return await stream.get_final_message()

            return await asyncio.gather(
                client.messages.create(
                    model="demo-claude", max_tokens=MAX_TOKENS, messages=user(GREETING)
                ),
                streamed(),
            )

    plain, streamed = asyncio.run(scenario())
    assert text_of(plain) == GREETING_REPLY and plain.model == "demo-claude"
    assert text_of(streamed) == GREETING_REPLY and streamed.model == "demo-qwen"
    assert streamed.usage.output_tokens == 5

