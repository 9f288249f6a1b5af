"""The local web app behind `enhance-edge serve` (needs the 'web' extra).

``limits`` (what one request may send) and ``service`` (the model choice, the one-at-a-time
upscale queue) do not depend on the web framework; ``app`` is the Starlette application and its
HTTP API; ``server`` binds a socket and runs it under uvicorn. Nothing here is imported by
``import enhance_edge``. The CLI imports ``limits`` at start (`serve`'s defaults; no web extra,
no onnxruntime) and ``service``, ``app`` and ``server`` only when `serve` runs.
"""
