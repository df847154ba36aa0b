"""Shared test settings.

Hypothesis's default 200 ms deadline per example is a timed assertion, and this project's tests have none (the
machines are shared and noisy: a kernel case that takes 150 ms alone takes 400 ms next to a compile). Every
hypothesis test here runs without one; their example counts and seeds stay their own.
"""

from hypothesis import settings

settings.register_profile("tilegraph", deadline=None)
settings.load_profile("tilegraph")
