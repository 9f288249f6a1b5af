"""Latency, throughput, memory and quality benchmarks (the ``train`` extra)."""

# The sections of a `bench` run, in the order they run (run.py measures them; cli.py offers them as
# choices without importing anything that measures).
SECTIONS = ("latency", "throughput", "quality", "memory", "end_to_end", "kernels", "release")
