"""The parameter schema, validated row by row against the seed and llama-server's own --help."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import help_capabilities

from llamadash.core.params.schema import (
    KINDS,
    META_COLUMNS,
    SECTIONS,
    SQL_TYPES,
    STATUSES,
    ParamValueError,
    load_schema,
)

DATA = Path(__file__).resolve().parents[3] / "data"



B11434 = help_capabilities("b11434")
B10001 = help_capabilities("b10001")


def _expected_values(kind: str) -> int:
    return 0 if kind in ("switch", "bool_pair") else 2 if kind == "int_pair" else 1


def test_every_row_is_valid() -> None:
    """One pass over all rows; every problem is collected so a failure lists them all."""
    schema = load_schema()
    problems: list[str] = []
    owner: dict[str, str] = {}
    for p in schema:
        where = p.column
        if p.kind not in KINDS:
            problems.append(f"{where}: unknown kind {p.kind}")
        if p.sql_type not in SQL_TYPES:
            problems.append(f"{where}: unknown sql_type {p.sql_type}")
        if p.status not in STATUSES:
            problems.append(f"{where}: unknown status {p.status}")
        if p.section not in SECTIONS:
            problems.append(f"{where}: unknown section {p.section}")
        if not p.help.strip():
            problems.append(f"{where}: no help text")
        if not p.flags:
            problems.append(f"{where}: no flags")
        if p.kind == "enum" and not p.choices:
            problems.append(f"{where}: enum without choices")
        if p.kind == "int_or_keyword" and not p.keywords:
            problems.append(f"{where}: int_or_keyword without keywords")
        if p.kind == "list" and not p.separator:
            problems.append(f"{where}: list without separator")
        if p.negative_flags and p.kind not in ("bool_pair", "switch"):
            problems.append(f"{where}: negative flags on a {p.kind}")
        if p.kind == "bool_pair" and not p.negative_flags:
            problems.append(f"{where}: bool_pair without negative flags")
        if p.min is not None and p.max is not None and p.min > p.max:
            problems.append(f"{where}: min {p.min} > max {p.max}")
        if p.default is not None:
            try:
                if p.coerce(p.default) != p.default:
                    problems.append(f"{where}: default {p.default!r} is not canonical")
            except ParamValueError as exc:
                problems.append(f"{where}: default does not type-check: {exc}")
            if p.choices and p.default not in p.choices:
                problems.append(f"{where}: default {p.default!r} not among the choices")
        for flag in p.all_flags:
            if not flag.startswith("-") or " " in flag:
                problems.append(f"{where}: malformed flag {flag!r}")
            if flag in owner:
                problems.append(f"{where}: flag {flag} also belongs to {owner[flag]}")
            owner[flag] = p.column
        if p.status == "clean":
            for flag in p.flags + p.negative_flags:
                if not B11434.accepts(flag):
                    problems.append(f"{where}: clean row, but b11434 does not accept {flag}")
        if p.status in ("absent", "not_server"):
            accepted = [f for f in p.all_flags if B11434.accepts(f)]
            if accepted:
                problems.append(f"{where}: status {p.status}, but b11434 accepts {accepted}")
        for caps in (B11434, B10001):
            for flag in p.all_flags:
                entry = caps.entry(flag)
                if entry is not None and not entry.removed and entry.value_count != _expected_values(p.kind):
                    problems.append(
                        f"{where}: {caps.label} {flag} takes {entry.value_count} value(s), kind {p.kind} "
                        f"writes {_expected_values(p.kind)}"
                    )
        if p.secret != (p.column in ("api_key", "hf_token")):
            problems.append(f"{where}: secret={p.secret}")
    assert problems == []


def test_env_names_match_the_help_of_b11434() -> None:
    mismatched = []
    for p in load_schema():
        if p.status != "clean" or not p.env:
            continue
        entry = B11434.entry(p.flags[0])
        assert entry is not None
        if entry.env != p.env:
            mismatched.append((p.column, p.env, entry.env))
    assert mismatched == []


def test_secrets_are_exactly_api_key_and_hf_token() -> None:
    schema = load_schema()
    assert {p.column: p.secret_env for p in schema if p.secret} == {
        "api_key": "LLAMA_API_KEY",
        "hf_token": "HF_TOKEN",
    }


def test_every_seed_column_is_covered_exactly_once() -> None:
    seed = [
        line.strip() for line in (DATA / "seed_models_columns.txt").read_text().splitlines() if line.strip()
    ]
    assert len(seed) == 175
    assert len(set(seed)) == 175
    columns = load_schema().columns
    assert len(columns) == len(set(columns)) == 168
    assert not set(columns) & set(META_COLUMNS)
    assert set(columns) | set(META_COLUMNS) == set(seed)


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ("repeat_last_n", -1),  # llama-server: "invalid repeat-last-n = -1"
        ("dry_penalty_last_n", -1),
        ("port", 0),
        ("port", 65536),
        ("top_p", 1.5),
        ("cache_type_k", "q9_9"),
        ("gpu_layers", "most"),
        ("control_vector_layer_range", [5, 1]),
    ],
)
def test_values_llama_server_rejects_do_not_coerce(column: str, bad: object) -> None:
    with pytest.raises(ParamValueError) as info:
        load_schema()[column].coerce(bad)
    assert info.value.column == column


def test_rows_that_need_existing_paths() -> None:
    schema = load_schema()
    # llama-server b11434 throws "not a directory" for a missing --slot-save-path
    assert schema["slot_save_path"].must_exist
    assert schema["model_path"].must_exist
    assert schema["lora"].item == "file"


def test_no_webui_owns_both_halves_of_the_ui_pair() -> None:
    param = load_schema()["no_webui"]
    entry = B11434.entry("--ui")
    assert entry is not None
    assert set(entry.flags) == set(param.flags) | set(param.negative_flags)
