"""The llama-server parameter schema and everything generated from it."""

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
    format_command,
    normalize_config,
)
from llamadash.core.params.schema import (
    META_COLUMNS,
    SECTIONS,
    Param,
    ParamValueError,
    Schema,
    load_schema,
)
from llamadash.core.params.validate import Issue, has_errors, validate_config

__all__ = [
    "META_COLUMNS",
    "SECTIONS",
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
    "format_command",
    "has_errors",
    "load_schema",
    "normalize_config",
    "parse_command_line",
    "parse_help",
    "probe_binary",
    "validate_config",
]
