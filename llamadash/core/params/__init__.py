"""The llama-server parameter schema and everything generated from it.

Every fact about a parameter that code outside this package needs comes from here, derived from
the descriptor (``schema.toml``): the source and secret columns, the secrets' environment
variables, the router-managed flags, the 32-bit limits, the words for true and false, the default
port, and :data:`COLUMN` for a column's name (``COLUMN.ctx_size``) where a literal would copy it.
"""

from llamadash.core.params.capabilities import (
    Capabilities,
    CapabilityError,
    HelpEntry,
    parse_help,
    probe_binary,
)
from llamadash.core.params.cmdline import CommandLineError, parse_command_line
from llamadash.core.params.command import (
    CommandError,
    build_command,
    first_api_key,
    format_command,
    normalize_config,
)
from llamadash.core.params.schema import (
    COLUMN,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DRAFT_COLUMNS,
    DRAFT_SOURCE_COLUMNS,
    FALSE_WORDS,
    FLOAT32_MAX,
    FLOAT32_MIN_NORMAL,
    INT32_RANGE,
    META_COLUMNS,
    MODEL_SOURCE_COLUMNS,
    ROLES,
    ROUTER_MANAGED_COLUMNS,
    ROUTER_MANAGED_FLAGS,
    ROUTER_SOURCE_COLUMNS,
    SECRET_COLUMNS,
    SECRET_ENV,
    SECTIONS,
    SOURCE_COLUMNS,
    SOURCE_LABELS,
    TRUE_WORDS,
    Param,
    ParamValueError,
    Schema,
    load_schema,
    parse_bool,
    secret_env_var,
)
from llamadash.core.params.validate import Issue, has_errors, validate_config

__all__ = [
    "COLUMN",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DRAFT_COLUMNS",
    "DRAFT_SOURCE_COLUMNS",
    "FALSE_WORDS",
    "FLOAT32_MAX",
    "FLOAT32_MIN_NORMAL",
    "INT32_RANGE",
    "META_COLUMNS",
    "MODEL_SOURCE_COLUMNS",
    "ROLES",
    "ROUTER_MANAGED_COLUMNS",
    "ROUTER_MANAGED_FLAGS",
    "ROUTER_SOURCE_COLUMNS",
    "SECRET_COLUMNS",
    "SECRET_ENV",
    "SECTIONS",
    "SOURCE_COLUMNS",
    "SOURCE_LABELS",
    "TRUE_WORDS",
    "Capabilities",
    "CapabilityError",
    "CommandError",
    "CommandLineError",
    "HelpEntry",
    "Issue",
    "Param",
    "ParamValueError",
    "Schema",
    "build_command",
    "first_api_key",
    "format_command",
    "has_errors",
    "load_schema",
    "normalize_config",
    "parse_bool",
    "parse_command_line",
    "parse_help",
    "probe_binary",
    "secret_env_var",
    "validate_config",
]
