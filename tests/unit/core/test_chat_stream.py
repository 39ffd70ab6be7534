"""Reading llama-server's streamed chat completions: lines split anywhere, the last chunk's figures."""

from __future__ import annotations

import json

from llamadash.core.chat_stream import (
    ChatResult,
    ChatStream,
    error_message,
    read_chunk,
    result_text,
    split_sse,
)

# As llama-server b0 (this machine's wheel) streams "Hello" with max_tokens 6 (ids shortened).
REAL_STREAM = (
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],'
    '"object":"chat.completion.chunk"}\n\n'
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":","}}],"object":"chat.completion.chunk"}\n\n'
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"h\\u00e9"}}],"object":"chat.completion.chunk"}\n\n'
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"€;"}}],"object":"chat.completion.chunk"}\n\n'
    'data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"object":"chat.completion.chunk"}\n\n'
    'data: {"choices":[],"object":"chat.completion.chunk","usage":{"completion_tokens":6,"prompt_tokens":96,'
    '"total_tokens":102,"prompt_tokens_details":{"cached_tokens":0}},"timings":{"cache_n":0,"prompt_n":96,'
    '"prompt_ms":1.59,"prompt_per_token_ms":0.0165625,"prompt_per_second":60377.35849056603,"predicted_n":6,'
    '"predicted_ms":1.012,"predicted_per_token_ms":0.2024,"predicted_per_second":4940.711462450593}}\n\n'
    "data: [DONE]\n\n"
).encode()


def test_split_sse_keeps_an_incomplete_line_for_the_next_piece():
    payloads, rest = split_sse(b'data: {"a":1}\n\ndata: {"b"')
    assert payloads == ['{"a":1}'] and rest == b'data: {"b"'
    payloads, rest = split_sse(rest + b":2}\r\n\r\n: a comment\nevent: x\ndata:[DONE]\n")
    assert payloads == ['{"b":2}', "[DONE]"] and rest == b""


def test_a_stream_fed_in_pieces_split_mid_line_and_mid_character_gives_the_same_answer():
    whole = ChatStream()
    whole.feed(REAL_STREAM)
    # every cut point, including inside "€" (3 bytes in UTF-8) and inside "data:"
    for cut in range(1, len(REAL_STREAM)):
        stream = ChatStream()
        texts = [c.text for c in stream.feed(REAL_STREAM[:cut]) + stream.feed(REAL_STREAM[cut:]) if c.text]
        assert "".join(texts) == ",hé€;" == stream.text
        assert stream.done and stream.result() == whole.result()


def test_byte_by_byte_each_content_chunk_is_one_piece():
    stream = ChatStream()
    pieces = [chunk.text for i in range(len(REAL_STREAM)) for chunk in stream.feed(REAL_STREAM[i : i + 1])]
    assert [p for p in pieces if p] == [",", "hé", "€;"]


def test_the_final_chunk_gives_tokens_and_speeds_from_timings():
    stream = ChatStream()
    stream.feed(REAL_STREAM)
    assert stream.result() == ChatResult(
        prompt_tokens=96,
        generated_tokens=6,
        generation_tps=4940.711462450593,
        prompt_tps=60377.35849056603,
        finish_reason="length",
        text=",hé€;",
    )
    assert result_text(stream.result()) == "prompt 96 tokens · generated 6 tokens · 4,940.7 tok/s"


def test_usage_without_timings_gives_tokens_and_no_speed():
    stream = ChatStream()
    final = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    stream.feed(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
    result = stream.result()
    assert (result.prompt_tokens, result.generated_tokens, result.generation_tps) == (5, 3, None)
    assert result_text(result) == "prompt 5 tokens · generated 3 tokens · n/a tok/s"


def test_a_payload_that_is_not_json_is_skipped_and_an_error_event_is_kept():
    stream = ChatStream()
    chunks = stream.feed(b'data: not json\n\ndata: {"error":{"code":500,"message":"out of memory"}}\n\n')
    assert [c.error for c in chunks] == ["out of memory"] and stream.error == "out of memory"
    assert read_chunk("[DONE]").done


def test_error_messages_are_readable():
    body = b'{"error":{"code":400,"message":"Expected \'messages\' to be an array","type":"invalid_request_error"}}'
    assert error_message(400, body) == "HTTP 400: Expected 'messages' to be an array"
    assert error_message(401, b'{"error":{"message":"Invalid API Key"}}') == "HTTP 401: Invalid API Key"
    assert error_message(503, b"Loading model") == "HTTP 503: Loading model"
    assert error_message(500, b"") == "HTTP 500"
    assert error_message(None, b"", "Connection refused") == "Connection refused"
