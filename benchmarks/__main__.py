"""``python -m enhance_edge.benchmarks [OPTIONS]``: the same as ``enhance-edge bench [OPTIONS]``."""

from enhance_edge.benchmarks.cli import bench

if __name__ == "__main__":  # the memory probes' spawned processes import this module as __mp_main__
    bench(prog_name="python -m enhance_edge.benchmarks")
