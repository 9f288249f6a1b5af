"""Evaluation: the protocol's split, pairs and scores (``protocol``, ``dataset``), the degraded
conditions and the training degradations (``degradation``), `enhance-edge evaluate`'s loop
(``evaluate``) and the Yale face download (``yale``). Builds on ``core`` and ``io``; never
imports ``apps`` (tests/test_layers.py)."""
