"""Latency, throughput, memory and quality benchmarks (the ``train`` extra)."""
