"""Reading a streamed chat completion of llama-server (server-sent events), without Qt.

``POST /v1/chat/completions`` with ``"stream": true`` answers with lines ``data: {json}`` separated
by blank lines, and ``data: [DONE]`` at the end. Each chunk's ``choices[0].delta.content`` is a
piece of the answer. With ``"stream_options": {"include_usage": true}`` the last chunk (its
``choices`` empty) carries ``usage`` (``prompt_tokens``, ``completion_tokens``), and llama-server
adds ``timings`` (``prompt_n``, ``predicted_n``, ``prompt_per_second``, ``predicted_per_second``).

The bytes arrive in pieces that need not end at a line, nor at a UTF-8 character:
:func:`split_sse` takes the complete lines of a buffer and gives back the rest for the next piece.
:func:`read_chunk` reads one ``data:`` payload; a :class:`ChatStream` folds a whole answer into a
:class:`ChatResult`. :func:`error_message` turns an HTTP error's body into a readable line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DONE",
    "ChatChunk",
    "ChatResult",
    "ChatStream",
    "error_message",
    "read_chunk",
    "result_text",
    "split_sse",
]

#: The payload of the last event.
DONE = "[DONE]"


def split_sse(buffer: bytes) -> tuple[list[str], bytes]:
    """The ``data:`` payloads of the complete lines in ``buffer``, and the incomplete rest.

    Lines end with ``\\n`` (a ``\\r`` before it is dropped); blank lines, comments (``:``) and other
    fields (``event:``, ``id:``) carry no data here and are skipped. The rest is bytes, so a
    character split between two pieces is decoded whole with the next one.
    """
    *lines, rest = buffer.split(b"\n")
    payloads = []
    for raw in lines:
        line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        if line.startswith("data:"):
            payloads.append(line[5:].removeprefix(" "))
    return payloads, rest


@dataclass(frozen=True)
class ChatChunk:
    """One event of the stream.

    Attributes:
        text: The piece of the answer (empty when the chunk has none).
        done: The ``[DONE]`` event.
        finish_reason: ``stop``, ``length``, ... on the chunk that ends the answer.
        usage: The ``usage`` object of the last chunk.
        timings: llama-server's ``timings`` object of the last chunk.
        error: The message of an ``error`` event (a server that fails mid-stream).
    """

    text: str = ""
    done: bool = False
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    error: str | None = None


def read_chunk(payload: str) -> ChatChunk:
    """One ``data:`` payload as a :class:`ChatChunk`.

    Raises:
        ValueError: The payload is neither ``[DONE]`` nor a JSON object.
    """
    if payload.strip() == DONE:
        return ChatChunk(done=True)
    data = json.loads(payload)  # a JSONDecodeError is a ValueError
    if not isinstance(data, dict):
        raise ValueError(f"not a chat completion chunk: {payload[:80]!r}")
    if "error" in data:
        return ChatChunk(error=_error_text(data["error"]) or "the server reported an error")
    text, finish = "", None
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            text = delta["content"]
        finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    timings = data.get("timings") if isinstance(data.get("timings"), dict) else None
    return ChatChunk(text=text, finish_reason=finish, usage=usage, timings=timings)


@dataclass(frozen=True)
class ChatResult:
    """The figures of one finished answer; ``None`` where the server gave none.

    Attributes:
        prompt_tokens: Tokens of the prompt (``timings.prompt_n``, else ``usage.prompt_tokens``);
            with a cached prompt ``prompt_n`` counts only the tokens evaluated now.
        generated_tokens: Tokens generated (``timings.predicted_n``, else ``usage.completion_tokens``).
        generation_tps: Generation tokens per second (``timings.predicted_per_second``).
        prompt_tps: Prompt tokens per second (``timings.prompt_per_second``).
        finish_reason: Why the answer ended (``stop``, ``length``).
        text: The whole answer.
    """

    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    generation_tps: float | None = None
    prompt_tps: float | None = None
    finish_reason: str | None = None
    text: str = ""


@dataclass
class ChatStream:
    """Folds the bytes of one streamed answer into its text and its :class:`ChatResult`.

    Feed each piece with :meth:`feed`; it returns the chunks completed by that piece.
    """

    done: bool = False
    text: str = ""
    error: str | None = None
    _rest: bytes = b""
    _finish: str | None = None
    _usage: dict[str, Any] = field(default_factory=dict)
    _timings: dict[str, Any] = field(default_factory=dict)

    def feed(self, data: bytes) -> list[ChatChunk]:
        """The chunks of the lines ``data`` completes (a payload that is not JSON is skipped)."""
        payloads, self._rest = split_sse(self._rest + data)
        chunks = []
        for payload in payloads:
            try:
                chunk = read_chunk(payload)
            except ValueError:
                continue
            chunks.append(chunk)
            self.done = self.done or chunk.done
            self.text += chunk.text
            self._finish = chunk.finish_reason or self._finish
            self._usage.update(chunk.usage or {})
            self._timings.update(chunk.timings or {})
            if chunk.error is not None:
                self.error = chunk.error
        return chunks

    def result(self) -> ChatResult:
        """The figures known so far."""
        timings, usage = self._timings, self._usage
        return ChatResult(
            prompt_tokens=_int(timings.get("prompt_n"), usage.get("prompt_tokens")),
            generated_tokens=_int(timings.get("predicted_n"), usage.get("completion_tokens")),
            generation_tps=_positive(timings.get("predicted_per_second")),
            prompt_tps=_positive(timings.get("prompt_per_second")),
            finish_reason=self._finish,
            text=self.text,
        )


def result_text(result: ChatResult) -> str:
    """``prompt 96 tokens · generated 6 tokens · 4,941 tok/s`` (``n/a`` for a missing figure)."""

    def count(value: int | None) -> str:
        return "n/a" if value is None else f"{value:,}"

    speed = "n/a" if result.generation_tps is None else f"{result.generation_tps:,.1f}"
    return f"prompt {count(result.prompt_tokens)} tokens · generated {count(result.generated_tokens)} tokens · {speed} tok/s"


def error_message(status: int | None, body: bytes, fallback: str = "") -> str:
    """A readable line for a failed request: the server's own message where its body has one.

    Args:
        status: The HTTP status, or ``None`` when no answer came (refused, unreachable).
        body: The answer's body (llama-server: ``{"error": {"code": ..., "message": ...}}``).
        fallback: The network error's text, used when there is no status.
    """
    if status is None:
        return fallback or "no answer from the server"
    message = ""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = _error_text(data.get("error")) or _error_text(data.get("message"))
    if not message:
        message = body.decode("utf-8", errors="replace").strip()[:300]
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return error if isinstance(error, str) else ""


def _int(*values: Any) -> int | None:
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def _positive(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
