"""Conformance of the gateway with the official `openai` Python SDK, used as customers use it.

The chat, streaming, tool and upstream-error tests run once per public demo model (`demo_model`),
one per upstream protocol: OpenAI relayed as-is, and translated to Anthropic, DashScope and MiniMax.

The demo gateway's upstream is the built-in mock, which answers deterministically:
- content `"Mock reply to: <last user text without [mock:...] directives>"`, one stream chunk per
  word;
- usage: prompt_tokens = sum over messages of (whitespace-separated words of its text + 3),
  completion_tokens = reply words (3 for a tool call);
- `[mock:status=N]` fails with that status, `[mock:tool_call]` (with tools) calls the first tool
  with `{"city":"Paris"}`, `[mock:cut_after=N]` breaks a stream after N content chunks,
  `[mock:fail_first=N]` fails the first N requests with that exact text.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import openai
import pytest

from mockspec import (
    STREAM_CUTS,
    DEMO_MODELS,
    DISPLAY_NAMES,
    GREETING,
    GREETING_REPLY,
    STREAM_ERROR_TEXT_BUG,
    STREAM_VARIANTS,
    model_cases,
)

MODEL = "demo-gpt"

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
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {}},
    },
}


def message_text(message) -> str:
    content = message.get("content") if isinstance(message, dict) else message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def expected_prompt_tokens(messages) -> int:
    """The mock's formula: every message counts its words plus 3."""
    return sum(len(message_text(m).split()) + 3 for m in messages)


def reply_words(text: str) -> int:
    return len(text.split())


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def assert_envelope(error: openai.APIStatusError, status: int, kind: str | None = None):
    """The SDK exposes the gateway's OpenAI error envelope: `.body` is the inner `error` object."""
    assert error.status_code == status
    assert isinstance(error.body, dict), error.body
    assert isinstance(error.body.get("message"), str) and error.body["message"], error.body
    assert isinstance(error.body.get("type"), str) and error.body["type"], error.body
    if kind is not None:
        assert error.body["type"] == kind
    assert error.type == error.body["type"]
    # The SDK puts the gateway's message into the exception text a user sees.
    assert error.body["message"] in str(error)
    assert error.request_id and error.request_id.startswith("req_")


def collect(stream) -> list:
    chunks = list(stream)
    assert chunks, "the stream produced no chunk"
    return chunks


def streamed_text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# 1. Non-streaming chat -------------------------------------------------------------------------


def test_chat_completion_non_streaming(client, demo_model):
    completion = client.chat.completions.create(model=demo_model, messages=user(GREETING))

    assert completion.object == "chat.completion"
    assert completion.model == demo_model
    assert completion.id
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == GREETING_REPLY
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == len(GREETING.split()) + 3 == 5
    assert completion.usage.completion_tokens == reply_words(GREETING_REPLY) == 5
    assert completion.usage.total_tokens == 10
    # The SDK surfaces the gateway's request id on every response object.
    assert completion._request_id and completion._request_id.startswith("req_")


@pytest.mark.parametrize("model", [*DEMO_MODELS, "demo-mini"])
def test_chat_completion_counts_every_message(client, model):
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "First question here"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": [{"type": "text", "text": "And a second one"}]},
    ]
    completion = client.chat.completions.create(model=model, messages=messages)

    assert completion.model == model
    assert completion.choices[0].message.content == "Mock reply to: And a second one"
    assert completion.usage.prompt_tokens == expected_prompt_tokens(messages) == 26
    assert completion.usage.completion_tokens == 7


def test_chat_completion_max_tokens_truncates(client, demo_model):
    completion = client.chat.completions.create(
        model=demo_model, messages=user(GREETING), max_completion_tokens=2
    )
    assert completion.choices[0].message.content == "Mock reply"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 2


# 2. Streaming chat -----------------------------------------------------------------------------


def test_chat_completion_streaming_with_usage(client, demo_model):
    chunks = collect(
        client.chat.completions.create(
            model=demo_model,
            messages=user(GREETING),
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == demo_model for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert streamed_text(chunks) == GREETING_REPLY
    # Tokens arrive one by one, not as one buffered blob.
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == reply_words(GREETING_REPLY)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]

    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert final.usage.prompt_tokens == 5
    assert final.usage.completion_tokens == 5
    assert final.usage.total_tokens == 10
    assert [c for c in chunks[:-1] if c.usage is not None] == []


@pytest.mark.parametrize("cut", STREAM_CUTS)
def test_chat_completion_stream_reads_the_same_however_the_upstream_cuts_it(client, demo_model, cut):
    """A stream the upstream sends in one piece, or cut anywhere, reaches the SDK whole: every
    word, the finish reason and the usage."""
    chunks = collect(
        client.chat.completions.create(
            model=demo_model,
            messages=user(GREETING + cut),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert streamed_text(chunks) == GREETING_REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_chat_completion_streaming_without_usage(client, demo_model):
    chunks = collect(
        client.chat.completions.create(model=demo_model, messages=user(GREETING), stream=True)
    )

    assert streamed_text(chunks) == GREETING_REPLY
    assert all(c.model == demo_model for c in chunks)
    assert [c for c in chunks if c.usage is not None] == []
    assert all(len(c.choices) == 1 for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_completion_stream_helper(client, demo_model):
    """`client.chat.completions.stream(...)` accumulates the chunks into a final completion."""
    with client.chat.completions.stream(
        model=demo_model, messages=user(GREETING), stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()

    assert "".join(deltas) == GREETING_REPLY
    assert final.model == demo_model
    assert final.choices[0].message.content == GREETING_REPLY
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.prompt_tokens == 5
    assert final.usage.completion_tokens == 5


def test_stream_broken_upstream_raises_in_the_sdk(client, demo_model):
    """An upstream stream that breaks midway reaches the SDK as an error, not a silent cut."""
    stream = client.chat.completions.create(
        model=demo_model, messages=user("one two three four [mock:cut_after=2]"), stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert streamed_text(received) == "Mock reply "
    assert isinstance(caught.value.body, dict)
    assert caught.value.body.get("message") and caught.value.body.get("type")


def test_stream_in_band_upstream_error_raises_in_the_sdk(client, demo_model):
    """An error the upstream reports inside its stream, after the first delta, makes the SDK
    raise with the gateway's error envelope instead of ending the stream as if complete."""
    stream = client.chat.completions.create(
        model=demo_model,
        messages=user("one two three [mock:stream_error]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert streamed_text(received) == "Mock "
    assert all(not c.choices or c.choices[0].finish_reason is None for c in received)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body.get("message") and caught.value.body.get("type")


@pytest.mark.parametrize(
    "demo_model",
    model_cases(
        ),
)
def test_stream_error_message_is_the_gateways(client, demo_model):
    """A failure mid-stream reads like any other upstream failure: the gateway's message, never
    the upstream's own words."""
    with pytest.raises(openai.InternalServerError) as failure:
        client.chat.completions.create(model=demo_model, messages=user("Hi [mock:status=500]"))
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(
            model=demo_model, messages=user("one two three [mock:stream_error]"), stream=True
        ):
            pass
    assert caught.value.body["message"] == failure.value.body["message"]


# 3. Models -------------------------------------------------------------------------------------


def test_models_list(client):
    models = client.models.list()
    by_id = {m.id: m for m in models}

    assert set(DISPLAY_NAMES) <= set(by_id)
    for model in by_id.values():
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert model.owned_by
    # Extra fields survive the SDK's parsing.
    assert {name: by_id[name].display_name for name in DISPLAY_NAMES} == DISPLAY_NAMES


def test_models_list_raw_json_has_display_names(client):
    raw = client.models.with_raw_response.list()
    assert raw.http_response.status_code == 200
    body = json.loads(raw.text)

    assert body["object"] == "list"
    names = {m["id"]: m.get("display_name") for m in body["data"]}
    assert names.get("demo-gpt") == "Demo GPT"
    assert names.get("demo-mini") == "Demo Mini"
    assert {m.id for m in raw.parse()} >= {"demo-gpt", "demo-mini"}


def test_models_retrieve(client):
    model = client.models.retrieve("demo-mini")
    assert model.id == "demo-mini"
    assert model.object == "model"
    assert model.display_name == "Demo Mini"

    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert_envelope(caught.value, 404, "invalid_request_error")


# 4. Tool calls ---------------------------------------------------------------------------------

WEATHER_QUESTION = "What is the weather in Paris? [mock:tool_call]"


def tool_result(call_id: str) -> dict:
    return {"role": "tool", "tool_call_id": call_id, "content": '{"temperature_c": 21, "sky": "clear"}'}


def assert_follow_up_usage(completion, messages):
    assert completion.choices[0].message.content == "Mock reply to: What is the weather in Paris?"
    assert completion.choices[0].finish_reason == "stop"
    # Proves the gateway relayed all three messages (assistant tool call and tool result too).
    assert completion.usage.prompt_tokens == expected_prompt_tokens(messages)


def test_tool_call_round_trip(client, demo_model):
    messages = user(WEATHER_QUESTION)
    completion = client.chat.completions.create(
        model=demo_model, messages=messages, tools=[WEATHER_TOOL, CLOCK_TOOL]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens == expected_prompt_tokens(messages)

    # Follow-up the documented way: append the SDK's message object, then the tool result.
    messages = messages + [choice.message, tool_result(call.id)]
    follow_up = client.chat.completions.create(model=demo_model, messages=messages)
    assert_follow_up_usage(follow_up, messages)


def test_tool_call_round_trip_streaming(client, demo_model):
    messages = user(WEATHER_QUESTION)
    chunks = collect(
        client.chat.completions.create(
            model=demo_model,
            messages=messages,
            tools=[WEATHER_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    calls: dict[int, dict] = {}
    finish = None
    for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] += delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
    assert finish == "tool_calls"
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert chunks[-1].usage.completion_tokens == 3

    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ],
    }
    messages = messages + [assistant, tool_result(call["id"])]
    follow_up = collect(
        client.chat.completions.create(
            model=demo_model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert streamed_text(follow_up) == "Mock reply to: What is the weather in Paris?"
    assert follow_up[-1].usage.prompt_tokens == expected_prompt_tokens(messages)


def test_tool_call_stream_helper(client, demo_model):
    with client.chat.completions.stream(
        model=demo_model, messages=user(WEATHER_QUESTION), tools=[WEATHER_TOOL]
    ) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()

    assert [(e.name, json.loads(e.arguments)) for e in done] == [("get_weather", {"city": "Paris"})]
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


# 5. Errors -------------------------------------------------------------------------------------


def test_invalid_api_key(make_client):
    client = make_client(api_key="sk-not-a-real-key-0123456789abcdef")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=MODEL, messages=user(GREETING))
    assert_envelope(caught.value, 401)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.response.headers.get("x-should-retry") == "false"

    with pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert_envelope(caught.value, 401)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_unknown_model(client, stream):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=user(GREETING), stream=stream)
    assert_envelope(caught.value, 404, "invalid_request_error")
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "no-such-model" in caught.value.body["message"]


def test_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[])
    assert_envelope(caught.value, 400, "invalid_request_error")
    assert caught.value.param == "messages"


# A DashScope upstream reports a failure of a streaming request inside an HTTP 200 event stream.
QWEN_STREAM_ERROR_BUG = (
    "a streaming request to demo-qwen (DashScope upstream) whose upstream fails before any "
    "content gets HTTP 200 text/event-stream with one in-band error event "
    "(`data: {{\"error\":{{\"message\":\"{upstream}: mock fault {status}\",...}}}}`) instead of "
    "HTTP {expected}; the SDK raises a plain openai.APIError while iterating, not {sdk_error}, and "
    "the upstream's own message leaks"
)


@pytest.mark.parametrize(
    "demo_model,stream",
    model_cases(
        STREAM_VARIANTS,
        ),
)
def test_upstream_rate_limit(client, demo_model, stream):
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=demo_model, messages=user("Hi [mock:status=429]"), stream=stream
        )
    assert_envelope(caught.value, 429)
    assert caught.value.response.headers.get("x-should-retry") == "true"


@pytest.mark.parametrize(
    "demo_model,stream",
    model_cases(
        STREAM_VARIANTS,
        ),
)
def test_upstream_server_error(client, demo_model, stream):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model=demo_model, messages=user("Hi [mock:status=500]"), stream=stream
        )
    assert_envelope(caught.value, 502, "server_error")
    assert caught.value.response.headers.get("x-should-retry") == "true"


def test_transient_upstream_failure_recovers_with_default_retries(make_client):
    """One upstream 500: whether the gateway or the SDK retries, the customer gets an answer."""
    client = make_client(max_retries=2)
    text = f"Flaky {uuid.uuid4().hex} [mock:fail_first=1]"
    completion = client.chat.completions.create(model=MODEL, messages=user(text))
    assert completion.choices[0].message.content == "Mock reply to: " + text.removesuffix(
        " [mock:fail_first=1]"
    )


# 6. Headers ------------------------------------------------------------------------------------


def test_response_headers(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user(GREETING))
    request_id = raw.headers.get("x-request-id")
    assert request_id and request_id.startswith("req_")
    overhead = raw.headers.get("x-modelrouter-overhead-us")
    assert overhead is not None and overhead.isdigit(), overhead
    assert int(overhead) >= 0
    completion = raw.parse()
    assert completion.choices[0].message.content == GREETING_REPLY
    assert completion._request_id == request_id

    other = client.chat.completions.with_raw_response.create(model=MODEL, messages=user(GREETING))
    assert other.headers.get("x-request-id") not in (None, request_id)


def test_response_headers_streaming(client):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=user(GREETING), stream=True
    )
    assert (raw.headers.get("x-request-id") or "").startswith("req_")
    overhead = raw.headers.get("x-modelrouter-overhead-us")
    assert overhead is not None and overhead.isdigit(), overhead
    assert streamed_text(collect(raw.parse())) == GREETING_REPLY


# Async client ----------------------------------------------------------------------------------


def test_async_client(base_url, api_key):
    async def scenario():
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
            completion, stream = await asyncio.gather(
                client.chat.completions.create(model=MODEL, messages=user(GREETING)),
                client.chat.completions.create(
                    model="demo-mini",
                    messages=user(GREETING),
                    stream=True,
                    stream_options={"include_usage": True},
                ),
            )
            chunks = [chunk async for chunk in stream]
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model="no-such-model", messages=user(GREETING))
            return completion, chunks

    completion, chunks = asyncio.run(scenario())
    assert completion.choices[0].message.content == GREETING_REPLY
    assert streamed_text(chunks) == GREETING_REPLY
    assert all(c.model == "demo-mini" for c in chunks)
    assert chunks[-1].usage.total_tokens == 10
