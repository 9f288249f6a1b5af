"""The front ends: the command line (``cli``, ``cli_support``), the web page (``web``) and
`upscale --cluster` (``cluster``, with ``uris`` for its URI inputs and outputs). They may import
every other part of the runtime; no other part imports them (tests/test_layers.py)."""
