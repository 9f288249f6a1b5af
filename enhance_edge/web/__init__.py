"""The local web app behind `enhance-edge serve` (needs the 'web' extra).

``service`` holds what does not depend on the web framework (limits, the model choice, the
one-at-a-time upscale queue); ``app`` is the Starlette application and its HTTP API;
``server`` binds a socket and runs it under uvicorn. Nothing here is imported by
``import enhance_edge``. The CLI imports ``service`` at start (its Limits are `serve`'s
defaults; it needs no web extra) and ``app`` and ``server`` only when `serve` runs.
"""
