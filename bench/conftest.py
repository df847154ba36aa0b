"""`pytest bench --benchmark-disable` is the smoke run of `make test`: every benchmark once, untimed."""

import timing


def pytest_configure(config):
    timing.SMOKE = bool(config.getoption("benchmark_disable", False))
