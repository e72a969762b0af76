"""Benchmarks against peers: EM speed, NUTS efficiency, end-to-end time, scaling."""
