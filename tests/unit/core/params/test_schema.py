"""The parameter schema, validated row by row against the seed and llama-server's own --help."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import help_capabilities

from llamadash.core.params import (
    COLUMN,
    DEFAULT_PORT,
    FALSE_WORDS,
    INT32_RANGE,
    MODEL_SOURCE_COLUMNS,
    ROLES,
    ROUTER_MANAGED_COLUMNS,
    ROUTER_MANAGED_FLAGS,
    ROUTER_SOURCE_COLUMNS,
    SECRET_COLUMNS,
    SECRET_ENV,
    SOURCE_COLUMNS,
    SOURCE_LABELS,
    TRUE_WORDS,
    parse_bool,
    secret_env_var,
)
from llamadash.core.params.schema import (
    ITEM_KINDS,
    KINDS,
    META_COLUMNS,
    SECTIONS,
    SEED_META_COLUMNS,
    SOURCE_ROLES,
    SQL_TYPES,
    STATUSES,
    ParamValueError,
    label_from_column,
    load_schema,
    load_schema_text,
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
        if p.item is not None and p.kind != "list":
            problems.append(f"{where}: item {p.item!r} on a {p.kind}")
        unknown_parts = [part for part in p.item_parts if part not in ITEM_KINDS]
        if unknown_parts:
            problems.append(f"{where}: unknown item kind(s) {unknown_parts}")
        numeric_items = any(part in ("float", "int") for part in p.item_parts)
        if p.kind == "list" and (p.min is not None or p.max is not None) and not numeric_items:
            problems.append(f"{where}: min/max on a list without numeric items")
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
    assert set(columns) | set(SEED_META_COLUMNS) == set(seed)
    # llamadash's own, after the seed's: auto-restart, a remote server's URL, and the library router's
    # per-model settings
    assert set(META_COLUMNS) - set(SEED_META_COLUMNS) == {
        "auto_restart",
        "remote_url",
        "served",
        "load_on_startup",
        "stop_timeout_s",
    }


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


# ------------------------------------------------------------------------------------------------
# list items: llama-server reads some lists with std::stof ("--tensor-split a,b" stops it with
# 'error while handling argument "--tensor-split": stof'), so those rows declare their items.

#: The words of --help's value hints (``N0,N1,N2,...``, ``FNAME:SCALE,...``) that name numbers.
_NUMERIC_HINT_WORDS = {"N", "MiB", "P", "SCALE"}


def _hint_parts(hint: str) -> list[str]:
    """``"FNAME:SCALE,..."`` -> ``["FNAME", "SCALE"]``; ``"N0,N1,N2,..."`` -> ``["N"]``."""
    first = hint.strip("<>").split(",")[0]
    return [word.rstrip("0123456789") for word in first.split(":")]


def test_list_rows_whose_help_names_numbers_declare_numeric_items() -> None:
    """Every list row's items match its --help hint part for part: numbers where it names numbers."""
    problems = []
    for p in load_schema():
        if p.kind != "list":
            continue
        entry = B11434.entry(p.flags[0])
        assert entry is not None and entry.value_hint, p.column
        hint = _hint_parts(entry.value_hint)
        numeric_hint = [word in _NUMERIC_HINT_WORDS for word in hint]
        parts = p.item_parts or ("text",)
        numeric_item = [part in ("float", "int") for part in parts]
        if any(numeric_hint) and numeric_item != numeric_hint:
            problems.append(f"{p.column}: --help says {entry.value_hint}, item is {p.item!r}")
        if not any(numeric_hint) and any(numeric_item):
            problems.append(f"{p.column}: numeric item {p.item!r}, but --help says {entry.value_hint}")
    assert problems == []
    numeric = {p.column: p.item for p in load_schema() if any(x in ("float", "int") for x in p.item_parts)}
    assert numeric == {
        "tensor_split": "float",
        "lora_scaled": "file:float",
        "control_vector_scaled": "file:float",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b", "'a' is not a number"),
        ("1,x", "'x' is not a number"),
        ("3,-1", "'-1' is below the minimum 0"),
        ("inf", "'inf' is not a number"),
        ("nan", "'nan' is not a number"),
        ("1_0", "'1_0' is not a number"),  # Python reads 10, llama-server's stof reads 1
        ("0x10", "'0x10' is not a number"),
        ("3;1", "'3;1' is not a number"),
    ],
)
def test_tensor_split_refuses_what_is_not_a_number(text: str, message: str) -> None:
    param = load_schema()["tensor_split"]
    for attempt in (
        lambda: param.from_text(text),
        lambda: param.coerce(text),
        lambda: param.coerce(text.split(",")),
    ):
        with pytest.raises(ParamValueError) as info:
            attempt()
        assert info.value.column == "tensor_split"
        assert message in info.value.message
        assert "numbers >= 0 separated by ','" in info.value.message


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("3,1", ["3", "1"]),
        (" 0.75 , 0.25 ", ["0.75", "0.25"]),
        ("1e1,.5,2.", ["1e1", ".5", "2."]),
        ("0,0", ["0", "0"]),
        ([3, 1.5], ["3", "1.5"]),  # numbers from a JSON import
        (["3", "1"], ["3", "1"]),
    ],
)
def test_tensor_split_keeps_numbers_as_typed(value: object, canonical: list[str]) -> None:
    param = load_schema()["tensor_split"]
    assert param.coerce(value) == canonical
    assert param.from_text(param.to_text(canonical)) == canonical
    assert param.from_db(param.to_db(canonical)) == canonical


@pytest.mark.parametrize("column", ["lora_scaled", "control_vector_scaled"])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/m/a.gguf:x", "'x' in '/m/a.gguf:x' is not a number"),
        ("/m/a.gguf", "'/m/a.gguf' is not FILE:NUMBER"),
        ("/m/a.gguf:0.5:1", "is not FILE:NUMBER"),
        (":0.5", "':0.5' lacks a file path"),
        ("/m/a.gguf:0.5,/m/b.gguf:", "'' in '/m/b.gguf:' is not a number"),
    ],
)
def test_scaled_adapters_refuse_an_item_that_is_not_fname_colon_scale(
    column: str, text: str, message: str
) -> None:
    param = load_schema()[column]
    with pytest.raises(ParamValueError) as info:
        param.from_text(text)
    assert info.value.column == column
    assert message in info.value.message
    assert "FILE:NUMBER items (a file path and a number joined by ':')" in info.value.message


@pytest.mark.parametrize("column", ["lora_scaled", "control_vector_scaled"])
def test_scaled_adapters_take_fname_colon_scale(column: str) -> None:
    param = load_schema()[column]
    assert param.from_text("/m/a b.gguf:0.5, /m/c.gguf:-1") == ["/m/a b.gguf:0.5", "/m/c.gguf:-1"]


@pytest.mark.parametrize("column", ["device", "override_tensor", "samplers", "rpc", "override_kv", "api_key"])
def test_lists_of_names_take_any_text(column: str) -> None:
    param = load_schema()[column]
    sep = param.separator or ","
    assert param.from_text(f"a b{sep}c:d=e") == ["a b", "c:d=e"]


def test_item_kinds_come_from_the_row_data() -> None:
    """Nothing is special-cased by column: a row's item declares what is checked."""
    schema = load_schema_text(
        """
[[param]]
column = "counts"
section = "Advanced"
sql_type = "TEXT"
kind = "list"
flags = ["--counts"]
separator = ","
item = "int"
min = 1
max = 8
status = "clean"
help = "whole numbers"

[[param]]
column = "pairs"
section = "Advanced"
sql_type = "TEXT"
kind = "list"
flags = ["--pairs"]
separator = ";"
item = "dir:int"
status = "clean"
help = "DIR:N pairs"
"""
    )
    counts, pairs = schema["counts"], schema["pairs"]
    assert counts.from_text("1,8") == ["1", "8"]
    assert counts.describe_type() == "whole numbers from 1 to 8 separated by ','"
    for bad, message in (
        ("1.5", "not a whole number"),
        ("9", "above the maximum 8"),
        ("0", "below the minimum 1"),
    ):
        with pytest.raises(ParamValueError, match=message):
            counts.from_text(bad)
    assert pairs.from_text("/d:3;/e:-4") == ["/d:3", "/e:-4"]
    assert (
        pairs.describe_type()
        == "DIR:N items (a directory path and a whole number joined by ':') separated by ';'"
    )
    with pytest.raises(ParamValueError, match="'x' in '/d:x' is not a whole number"):
        pairs.from_text("/d:x")


def test_every_row_s_label_roles_and_limits_are_valid() -> None:
    """The fields other code derives its facts from, checked on every row in one pass."""
    schema = load_schema()
    problems: list[str] = []
    labels: dict[str, str] = {}
    ranks: dict[int, str] = {}
    int_kinds = ("int", "int_or_keyword", "int_pair")
    for p in schema:
        where = p.column
        label = p.label
        if not label or label != label.strip() or not label[0].isupper() or "_" in label or len(label) > 24:
            problems.append(f"{where}: label {label!r} is not a short human name")
        if label.lower() in labels:
            problems.append(f"{where}: label {label!r} is also {labels[label.lower()]}'s")
        labels[label.lower()] = where
        unknown = [role for role in p.roles if role not in ROLES]
        if unknown or len(set(p.roles)) != len(p.roles):
            problems.append(f"{where}: roles {p.roles} (unknown or repeated)")
        is_source = any(role in SOURCE_ROLES for role in p.roles)
        if is_source != (p.source_rank is not None) or is_source != bool(p.source_label):
            problems.append(
                f"{where}: a source row needs source_rank and source_label, no other row has them"
            )
        if p.source_rank is not None:
            if p.source_rank in ranks:
                problems.append(f"{where}: source_rank {p.source_rank} is also {ranks[p.source_rank]}'s")
            ranks[p.source_rank] = where
        if p.secret and not p.env:
            problems.append(f"{where}: a secret needs the env variable its value travels in")
        if secret_env_var(p.column) != (p.env if p.secret else None):
            problems.append(f"{where}: secret_env_var gives {secret_env_var(p.column)!r}")
        if ("router_managed" in p.roles or "network" in p.roles) and not p.flags:
            problems.append(f"{where}: a router-managed or network row without flags")
        for value, reason in p.rejected:
            if p.kind not in int_kinds or isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{where}: rejected {value!r} on a {p.kind}")
            elif p.coerce(value) != value:
                problems.append(f"{where}: rejected {value!r} is not a value the row otherwise takes")
            if not reason.strip():
                problems.append(f"{where}: rejected {value!r} without a reason")
        if p.kind in int_kinds:
            low, high = p.int_range
            # llama-server reads C ints; only an unsigned one (seed) may go past INT32's top
            if low < INT32_RANGE[0] or high > 2**32 - 1:
                problems.append(f"{where}: int_range {p.int_range} is wider than llama-server reads")
        is_draft_setting = p.column.endswith("_draft") and "draft_source" not in p.roles
        if is_draft_setting and "draft" not in p.roles:
            problems.append(f"{where}: a _draft setting without the draft role")
    if sorted(ranks) != list(range(1, len(ranks) + 1)):
        problems.append(f"source ranks {sorted(ranks)} are not 1..{len(ranks)}")
    assert problems == []


def test_the_facts_derived_from_the_schema() -> None:
    """What other modules import instead of writing the values again."""
    schema = load_schema()
    assert SOURCE_COLUMNS[0] == "model_path"  # a file on disk is a model's source before any other
    assert set(SOURCE_COLUMNS) == set(MODEL_SOURCE_COLUMNS) | set(ROUTER_SOURCE_COLUMNS)
    assert list(SOURCE_LABELS) == list(SOURCE_COLUMNS) and SOURCE_LABELS["hf_repo"] == "Hugging Face"
    assert set(SECRET_COLUMNS) == {"api_key", "hf_token"}
    assert SECRET_ENV == {"api_key": "LLAMA_API_KEY", "hf_token": "HF_TOKEN"}
    assert secret_env_var("api_key") == "LLAMA_API_KEY" and secret_env_var("ctx_size") is None
    assert {"--host", "--port", "--alias", "--api-key", "--api-key-file"} <= ROUTER_MANAGED_FLAGS
    assert {"host", "port", "api_key", "api_key_file"} == set(ROUTER_MANAGED_COLUMNS)
    # a flag [router] names must not be a row's: that row would carry the router_managed role
    assert not any(flag in schema.by_flag for flag in schema.router_flags)
    assert schema["port"].default == DEFAULT_PORT == 8080
    assert INT32_RANGE == (-(2**31), 2**31 - 1)
    assert schema["ctx_size"].int_range == (0, 2**31 - 1)
    assert schema["seed"].int_range == (-1, 2**32 - 1)  # read as unsigned
    assert schema["n_parallel"].rejected_reason(0) == "0 is rejected; -1 = auto"
    assert schema["n_parallel"].rejected_reason(4) is None
    assert TRUE_WORDS.isdisjoint(FALSE_WORDS) and all(w == w.lower() for w in TRUE_WORDS | FALSE_WORDS)
    assert {"1", "true", "on", "yes", "enabled"} == TRUE_WORDS
    assert {"0", "false", "off", "no", "disabled"} == FALSE_WORDS
    assert [parse_bool(w) for w in (" On ", "DISABLED", "maybe", "")] == [True, False, None, None]
    assert COLUMN.ctx_size == "ctx_size"
    with pytest.raises(AttributeError, match="no column 'ctx_sise'"):
        _ = COLUMN.ctx_sise


def test_a_row_without_a_label_gets_one_from_its_column() -> None:
    schema = load_schema_text(
        """
[[param]]
column = "ctx_size_draft"
section = "Draft Model"
sql_type = "INTEGER"
kind = "int"
flags = ["--ctx-size-draft"]
status = "clean"
help = "draft context"
"""
    )
    assert schema["ctx_size_draft"].label == "Context size draft"
    assert label_from_column("n_gpu_layers") == "N GPU layers"
    assert load_schema()["ctx_size"].label == "Context size"  # the shipped rows have their own


def test_sections_come_in_the_order_users_look_for_them() -> None:
    schema = load_schema()
    assert SECTIONS[:4] == ("Model Path & Loading", "Context & Processing", "GPU Offloading", "Sampling")
    assert tuple(schema.sections()) == SECTIONS  # every listed section has rows, none is missing
    assert len(set(SECTIONS)) == len(SECTIONS)
    # weight repacking is for the CPU's kernels: it sits with the memory options, not the GPU's
    assert schema["repack"].section == "Memory & Performance"
    assert [p.column for p in schema.sections()["GPU Offloading"]] == [
        "device",
        "list_devices",
        "gpu_layers",
        "split_mode",
        "tensor_split",
        "main_gpu",
        "kv_offload",
        "no_host",
    ]


def test_a_descriptor_without_a_section_order_keeps_the_order_of_its_rows() -> None:
    rows = "".join(
        f'''
[[param]]
column = "{column}"
section = "{section}"
sql_type = "INTEGER"
kind = "int"
flags = ["--{column}"]
status = "clean"
help = "h"
'''
        for column, section in (("a", "Second"), ("b", "First"), ("c", "Second"))
    )
    assert {k: [p.column for p in v] for k, v in load_schema_text(rows).sections().items()} == {
        "Second": ["a", "c"],
        "First": ["b"],
    }
    ordered = load_schema_text('[sections]\norder = ["First", "Second"]\n' + rows)
    assert list(ordered.sections()) == ["First", "Second"]


def test_model_defaults_are_read_from_the_models_header() -> None:
    schema = load_schema()
    metadata = {"general.architecture": "qwen3", "qwen3.context_length": 32768, "qwen3.rope.freq_base": 1e6}
    assert schema["ctx_size"].model_value(metadata) == 32768
    assert schema["rope_freq_base"].model_value(metadata) == 1e6
    assert schema["ctx_size"].model_value({"qwen3.context_length": 32768}) is None  # no architecture
    assert schema["ctx_size"].model_value({"general.architecture": "qwen3"}) is None  # not in the file
    assert schema["ctx_size"].model_value({"general.architecture": "x", "x.context_length": "big"}) is None
    assert schema["batch_size"].model_value(metadata) is None  # not decided by the model
    assert {p.column for p in schema if p.model_default} == {"ctx_size", "rope_freq_base"}


def test_the_parsed_descriptor_is_cached_and_an_edited_or_broken_cache_is_parsed_again(tmp_path, monkeypatch):
    from importlib import resources

    from llamadash.core.params import schema as schema_mod

    monkeypatch.setenv("LLAMADASH_CACHE_DIR", str(tmp_path / "cache"))
    raw = resources.files("llamadash.core.params").joinpath("schema.toml").read_bytes()
    parsed = schema_mod._parsed_descriptor(raw)  # parsed, then written
    (cached,) = (tmp_path / "cache").iterdir()
    assert cached.name.startswith(f"schema-{len(raw)}-")
    assert schema_mod._schema_from_data(parsed) == schema_mod.load_schema()
    assert schema_mod._parsed_descriptor(raw) == parsed  # read back from the cache
    # an edited descriptor is another file: parsed, not taken from the old one
    edited = raw.replace(b"[[param]]", b'[extra]\nnote = "x"\n\n[[param]]', 1)
    assert schema_mod._parsed_descriptor(edited)["extra"] == {"note": "x"}
    assert len(list((tmp_path / "cache").iterdir())) == 2
    # a broken cache file: parsed again and written anew
    cached.write_bytes(b"\x00not marshal")
    assert schema_mod._parsed_descriptor(raw) == parsed
    assert schema_mod._parsed_descriptor(raw) == parsed
    # an unwritable cache folder: parsed every time, no error
    monkeypatch.setenv("LLAMADASH_CACHE_DIR", "/proc/no-such-place")
    assert schema_mod._parsed_descriptor(raw) == parsed
