"""Will it fit, and how fast is it: llama.cpp's own ``llama-fit-params`` and ``llama-bench``, read.

Pure: commands for the tools from a model's configuration (the schema's ``fit_params`` and
``bench_*`` fields say which rows go to which tool, with which flag), parsers of what they print,
and the placement a running server's ``--fit`` chose. Running the tools is the services' and the
CLI's job.
"""
