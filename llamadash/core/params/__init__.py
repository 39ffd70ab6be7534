"""The llama-server parameter schema and everything generated from it."""

from llamadash.core.params.schema import (
    META_COLUMNS,
    SECTIONS,
    Param,
    ParamValueError,
    Schema,
    load_schema,
)

__all__ = ["META_COLUMNS", "SECTIONS", "Param", "ParamValueError", "Schema", "load_schema"]
