"""/metrics parsing and the token rates derived from counter deltas."""

from __future__ import annotations

import pytest

from llamadash.core.prometheus import (
    GENERATION_TOKENS,
    PROMPT_TOKENS,
    CounterRates,
    MetricsParseError,
    parse_metrics,
)

# What llama-server b11434 answered on /metrics after two requests.
REAL = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 61
llamacpp:prompt_tokens_cached_total 0
llamacpp:prompt_seconds_total 0.00182
llamacpp:tokens_predicted_total 24
llamacpp:tokens_predicted_seconds_total 0.002492
llamacpp:n_decode_total 24
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 33516.5
llamacpp:requests_processing 0
llamacpp:requests_deferred 0
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 5 1700000000
"""


def test_parses_the_real_exposition():
    metrics = parse_metrics(REAL)
    assert metrics[PROMPT_TOKENS] == 61
    assert metrics[GENERATION_TOKENS] == 24
    assert metrics["llamacpp:prompt_seconds_total"] == pytest.approx(0.00182)
    assert metrics["llamacpp:requests_processing"] == 0
    assert metrics['llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="0"}'] == 5


def test_rejects_garbage():
    with pytest.raises(MetricsParseError):
        parse_metrics("llamacpp:x\n")
    with pytest.raises(MetricsParseError):
        parse_metrics("llamacpp:x abc\n")


def scrape(prompt: float, generation: float) -> dict[str, float]:
    return {PROMPT_TOKENS: prompt, GENERATION_TOKENS: generation}


def test_rates_need_two_scrapes_then_read_zero_when_idle():
    rates = CounterRates()
    rates.update(scrape(100, 50), at_s=10.0)
    assert rates.prompt_tokens_per_s is None and rates.generation_tokens_per_s is None
    rates.update(scrape(300, 150), at_s=12.0)
    assert rates.prompt_tokens_per_s == pytest.approx(100.0)
    assert rates.generation_tokens_per_s == pytest.approx(50.0)
    rates.update(scrape(300, 150), at_s=13.0)
    assert rates.prompt_tokens_per_s == 0.0 and rates.generation_tokens_per_s == 0.0


def test_a_counter_going_down_means_a_restart_not_a_negative_rate():
    rates = CounterRates()
    rates.update(scrape(300, 150), at_s=1.0)
    rates.update(scrape(10, 5), at_s=2.0)
    assert rates.prompt_tokens_per_s is None
    rates.update(scrape(20, 15), at_s=3.0)
    assert rates.generation_tokens_per_s == pytest.approx(10.0)


def test_missing_counters_reset_the_rates():
    rates = CounterRates()
    rates.update(scrape(1, 1), at_s=1.0)
    rates.update({}, at_s=2.0)
    assert rates.prompt_tokens_per_s is None
    rates.update(scrape(5, 5), at_s=3.0)
    assert rates.prompt_tokens_per_s is None  # the previous scrape was forgotten: no rate from a gap
