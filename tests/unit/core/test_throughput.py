"""Live tokens/s from /slots snapshots and finished requests: true rates, idle 0, unknown None."""

from __future__ import annotations

from typing import Any

import pytest

from llamadash.core.requests_log import RequestRecord, RequestStatus
from llamadash.core.throughput import SlotReading, Throughput, ThroughputMeter, parse_slots

# /slots of the real llama-server b11434 while slot 0 generated (params abridged) and slot 1 was idle
# after its task, and a slot that never had a task.
REAL_SLOTS: list[dict[str, Any]] = [
    {
        "id": 0,
        "n_ctx": 1024,
        "speculative": False,
        "is_processing": True,
        "id_task": 130,
        "n_prompt_tokens": 289,
        "n_prompt_tokens_processed": 35,
        "n_prompt_tokens_cache": 0,
        "params": {"n_predict": 300, "ignore_eos": True},
        "next_token": [{"has_next_token": True, "has_new_line": True, "n_remain": 46, "n_decoded": 254}],
    },
    {
        "id": 1,
        "n_ctx": 1024,
        "speculative": False,
        "is_processing": False,
        "id_task": 65,
        "n_prompt_tokens": 91,
        "n_prompt_tokens_processed": 0,
        "n_prompt_tokens_cache": 0,
        "next_token": [{"has_next_token": False, "has_new_line": False, "n_remain": -1, "n_decoded": 0}],
    },
    {"id": 2, "n_ctx": 1024, "speculative": False, "is_processing": False},
]


def busy(slot: int, task: int, decoded: int, prompt: int = 10) -> SlotReading:
    return SlotReading(slot, True, task, decoded, prompt)


def idle(slot: int, task: int | None = None) -> SlotReading:
    return SlotReading(slot, False, task, 0, 0)


def test_parse_slots_reads_the_real_answer() -> None:
    assert parse_slots(REAL_SLOTS) == [
        SlotReading(0, True, 130, 254, 35, 0),
        SlotReading(1, False, 65, 0, 0, 0),
        SlotReading(2, False),
    ]


def test_parse_slots_takes_next_token_as_an_object_too_and_skips_junk() -> None:
    readme_shape = {**REAL_SLOTS[0], "next_token": {"n_decoded": 7}}
    assert parse_slots([readme_shape, "x", {"id": "0"}, {"no": "id"}]) == [
        SlotReading(0, True, 130, 7, 35, 0)
    ]
    assert parse_slots({"error": "no slots"}) is None
    assert parse_slots([{**REAL_SLOTS[0], "next_token": []}])[0].decoded is None


def test_no_reading_is_unknown_not_zero() -> None:
    meter = ThroughputMeter()
    assert meter.reading(0.0) == Throughput(None, None, None, None, None)
    meter.add_slots(0.0, [busy(0, 1, 5)])
    assert meter.reading(0.0).generation_tps is None  # one snapshot: no rate yet
    assert meter.reading(0.0).busy_slots == 1


def test_one_idle_snapshot_is_known_idle() -> None:
    meter = ThroughputMeter()
    meter.add_slots(0.0, [idle(0), idle(1)])
    assert meter.reading(0.0) == Throughput(0.0, 0.0, 0, 2, None)


def test_steady_generation_reads_its_rate_all_along_never_a_request_count() -> None:
    """40 tokens/s for 10 s, polled every 0.25 s: every reading is 40, never 0, never 400."""
    meter = ThroughputMeter(window_s=2.0)
    meter.add_slots(0.0, [idle(0)])
    readings = []
    for step in range(1, 41):
        at = step * 0.25
        meter.add_slots(at, [busy(0, 7, int(40 * at))])
        readings.append(meter.reading(at).generation_tps)
    assert readings == [pytest.approx(40.0)] * 40


def test_two_busy_slots_add_up() -> None:
    meter = ThroughputMeter()
    meter.add_slots(0.0, [busy(0, 1, 0), busy(1, 2, 0)])
    for step in range(1, 9):
        at = step * 0.25
        meter.add_slots(at, [busy(0, 1, int(30 * at)), busy(1, 2, int(50 * at))])
    reading = meter.reading(2.0)
    assert reading.generation_tps == pytest.approx(80.0)
    assert reading.busy_slots == 2 and reading.total_slots == 2


def test_the_window_follows_a_change_of_speed() -> None:
    meter = ThroughputMeter(window_s=2.0)
    decoded = 0
    meter.add_slots(0.0, [busy(0, 1, 0)])
    for step in range(1, 41):  # 5 s at 100 t/s, then 5 s at 20 t/s
        decoded += 25 if step <= 20 else 5
        meter.add_slots(step * 0.25, [busy(0, 1, decoded)])
    assert meter.reading(10.0).generation_tps == pytest.approx(20.0)
    assert meter.average(0.0, 5.0).generation_tps == pytest.approx(100.0)
    assert meter.average(0.0).generation_tps == pytest.approx(60.0)


def test_the_tokens_after_the_last_snapshot_come_from_the_finished_record() -> None:
    meter = ThroughputMeter(window_s=10.0)
    meter.add_slots(0.0, [busy(0, 1, 0, prompt=0)])
    meter.add_slots(1.0, [busy(0, 1, 50, prompt=20)])
    # it ended at 1.5 s with 75 tokens; the record arrives before the snapshot that shows it idle
    meter.add_finished(1.5, 0, 1, generated_tokens=75, prompt_tokens=20)
    meter.add_slots(2.0, [idle(0, 1)])
    assert meter.average(0.0).generation_tps == pytest.approx(75 / 2.0)
    assert meter.average(0.0).prompt_tps == pytest.approx(20 / 2.0)
    # the same record again, or a late snapshot of the task, adds nothing
    meter.add_finished(2.1, 0, 1, generated_tokens=75)
    meter.add_slots(3.0, [busy(0, 1, 60)])
    assert meter.average(0.0).generation_tps == pytest.approx(75 / 3.0)


def test_a_record_read_after_the_idle_snapshot_goes_to_the_interval_it_ended_in() -> None:
    meter = ThroughputMeter(window_s=10.0)
    meter.add_slots(0.0, [busy(0, 1, 0)])
    meter.add_slots(1.0, [busy(0, 1, 50)])
    meter.add_slots(2.0, [idle(0, 1)])
    meter.add_finished(1.6, 0, 1, generated_tokens=75)
    assert meter.average(1.0, 2.0).generation_tps == pytest.approx(25.0)


def test_a_request_wholly_between_two_snapshots_is_counted_by_its_record() -> None:
    meter = ThroughputMeter(window_s=10.0)
    meter.add_slots(0.0, [idle(0)])
    meter.add_slots(1.0, [idle(0, 9)])  # it came and went: the slot shows its task, idle
    record = RequestRecord(0, 9, 0, RequestStatus.FINISHED, generated_tokens=30, prompt_tokens=12)
    meter.add_request(1.2, record)
    meter.add_slots(2.0, [idle(0, 9)])
    assert meter.average(0.0).generation_tps == pytest.approx(15.0)
    assert meter.average(0.0).prompt_tps == pytest.approx(6.0)


def test_a_request_running_when_the_meter_starts_is_not_a_burst() -> None:
    """The first snapshot is a baseline: 500 tokens decoded before it are not 'now'."""
    meter = ThroughputMeter()
    meter.add_slots(0.0, [busy(0, 3, 500)])
    meter.add_slots(1.0, [busy(0, 3, 540)])
    assert meter.reading(1.0).generation_tps == pytest.approx(40.0)
    meter.add_finished(1.5, 0, 3, generated_tokens=560)
    meter.add_slots(2.0, [idle(0, 3)])
    assert meter.average(0.0).generation_tps == pytest.approx(30.0)


def test_a_new_task_on_a_slot_counts_from_zero() -> None:
    meter = ThroughputMeter(window_s=10.0)
    meter.add_slots(0.0, [busy(0, 1, 90)])
    meter.add_slots(1.0, [busy(0, 1, 100)])
    meter.add_finished(1.1, 0, 1, generated_tokens=100)
    meter.add_slots(2.0, [busy(0, 2, 20)])
    assert meter.average(1.0, 2.0).generation_tps == pytest.approx(20.0)
    # the old task's record arriving late does not disturb the new task
    meter.add_finished(2.1, 0, 1, generated_tokens=100)
    meter.add_slots(3.0, [busy(0, 2, 50)])
    assert meter.average(2.0, 3.0).generation_tps == pytest.approx(30.0)


def test_idle_reads_zero_once_the_window_has_passed() -> None:
    meter = ThroughputMeter(window_s=2.0)
    meter.add_slots(0.0, [busy(0, 1, 0)])
    meter.add_slots(1.0, [busy(0, 1, 40)])
    meter.add_slots(2.0, [idle(0, 1)])
    assert meter.reading(2.0).generation_tps == pytest.approx(20.0)  # the last 2 s held 40 tokens
    assert meter.reading(2.0).busy_slots == 0
    meter.add_slots(3.0, [idle(0, 1)])
    meter.add_slots(4.0, [idle(0, 1)])
    assert meter.reading(4.0).generation_tps == 0.0
    assert meter.reading(4.0).prompt_tps == 0.0


def test_a_stale_meter_reads_unknown() -> None:
    meter = ThroughputMeter(stale_after_s=5.0)
    meter.add_slots(0.0, [busy(0, 1, 0)])
    meter.add_slots(1.0, [busy(0, 1, 40)])
    assert meter.reading(5.9).generation_tps == pytest.approx(40.0)
    assert meter.reading(6.1) == Throughput()
    meter.reset()
    assert meter.reading(6.1) == Throughput()


def test_an_older_snapshot_arriving_late_is_ignored() -> None:
    meter = ThroughputMeter()
    meter.add_slots(0.0, [busy(0, 1, 0)])
    meter.add_slots(1.0, [busy(0, 1, 40)])
    meter.add_slots(0.5, [busy(0, 1, 20)])
    assert meter.reading(1.0).generation_tps == pytest.approx(40.0)


def test_prompt_processing_is_its_own_rate() -> None:
    meter = ThroughputMeter()
    meter.add_slots(0.0, [busy(0, 1, 0, prompt=0)])
    meter.add_slots(0.5, [busy(0, 1, 0, prompt=256)])
    meter.add_slots(1.0, [busy(0, 1, 0, prompt=512)])
    reading = meter.reading(1.0)
    assert reading.prompt_tps == pytest.approx(512.0)
    assert reading.generation_tps == 0.0


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ThroughputMeter(window_s=0)


def test_history_is_bounded() -> None:
    meter = ThroughputMeter(window_s=2.0, history_s=10.0)
    for step in range(1000):
        meter.add_slots(step * 0.25, [busy(step % 4, step // 50, step)])
    assert len(meter._intervals) <= 10 / 0.25 + 2
    assert len(meter._tasks) <= 64
