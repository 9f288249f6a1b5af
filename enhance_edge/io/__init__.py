"""Images and files: reading, checking and writing images (``imageio``) and atomic file writes,
partial files and signals (``fileio``). Imports nothing else of the runtime but ``errors``
(tests/test_layers.py). The absolute imports make ``import io`` the standard library's everywhere."""
