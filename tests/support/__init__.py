"""Helpers shared by the tests, the benchmarks and the load tests: a real server, real clients."""
