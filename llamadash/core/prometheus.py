"""llama-server's ``/metrics`` (Prometheus text exposition) and the rates derived from its counters.

Pure Python. The two throughput gauges llama-server reports are averages since the *previous scrape*
(and each scrape resets them), so the dashboard computes its own rates from the ``_total`` counters:
:class:`CounterRates` takes two scrapes and divides the counter deltas by the wall time between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "GENERATION_TOKENS",
    "PROMPT_TOKENS",
    "REQUESTS_DEFERRED",
    "REQUESTS_PROCESSING",
    "CounterRates",
    "MetricsParseError",
    "parse_metrics",
]

PROMPT_TOKENS = "llamacpp:prompt_tokens_total"
GENERATION_TOKENS = "llamacpp:tokens_predicted_total"
REQUESTS_PROCESSING = "llamacpp:requests_processing"
REQUESTS_DEFERRED = "llamacpp:requests_deferred"


class MetricsParseError(ValueError):
    """The text is not Prometheus exposition format."""


def parse_metrics(text: str) -> dict[str, float]:
    """Parse Prometheus text exposition into ``{series: value}``.

    A series without labels is keyed by its name (``llamacpp:prompt_tokens_total``); a labelled one
    by the name with its label text as written (``name{position="0"}``). ``# HELP``/``# TYPE`` and
    other comments are skipped; a trailing timestamp is ignored.

    Raises:
        MetricsParseError: A non-comment line has no parsable value.
    """
    values: dict[str, float] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            close = line.rfind("}")
            if close < 0:
                raise MetricsParseError(f"line {number}: unclosed label set: {raw!r}")
            series, rest = line[: close + 1], line[close + 1 :].split()
        else:
            parts = line.split()
            series, rest = parts[0], parts[1:]
        if not rest:
            raise MetricsParseError(f"line {number}: no value: {raw!r}")
        try:
            values[series] = float(rest[0])
        except ValueError:
            raise MetricsParseError(f"line {number}: bad value {rest[0]!r}") from None
    return values


@dataclass(frozen=True, slots=True)
class _Scrape:
    at_s: float
    prompt: float
    generation: float


class CounterRates:
    """Prompt and generation tokens per second from two consecutive ``/metrics`` scrapes.

    The first scrape gives no rate (``None``); from the second on, an idle server reads ``0.0``.
    A counter that went down (the server restarted) gives ``None`` once and starts over.
    """

    def __init__(self) -> None:
        self._last: _Scrape | None = None
        self.prompt_tokens_per_s: float | None = None
        self.generation_tokens_per_s: float | None = None

    def update(self, metrics: dict[str, float], at_s: float) -> None:
        """Take a scrape made at monotonic time ``at_s`` (seconds)."""
        prompt, generation = metrics.get(PROMPT_TOKENS), metrics.get(GENERATION_TOKENS)
        if prompt is None or generation is None or not (math.isfinite(prompt) and math.isfinite(generation)):
            self.reset()
            return
        scrape = _Scrape(at_s, prompt, generation)
        last, self._last = self._last, scrape
        if last is None or scrape.at_s <= last.at_s:
            self.prompt_tokens_per_s = self.generation_tokens_per_s = None
            return
        elapsed = scrape.at_s - last.at_s
        d_prompt, d_generation = scrape.prompt - last.prompt, scrape.generation - last.generation
        if d_prompt < 0 or d_generation < 0:
            self.prompt_tokens_per_s = self.generation_tokens_per_s = None
            return
        self.prompt_tokens_per_s = d_prompt / elapsed
        self.generation_tokens_per_s = d_generation / elapsed

    def reset(self) -> None:
        """Forget the previous scrape (the endpoint failed): rates are unknown until two new scrapes."""
        self._last = None
        self.prompt_tokens_per_s = self.generation_tokens_per_s = None
