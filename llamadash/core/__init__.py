"""Pure-Python core of llamadash: no Qt may be imported here (tests/unit/test_layers.py checks)."""
