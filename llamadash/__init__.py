"""llamadash: a desktop dashboard for llama.cpp's llama-server."""

__version__ = "0.1.0"
APP_NAME = "llamadash"
