"""lamina's test suite (a regular package, so `tests.*` imports never resolve to a `tests` package some dependency installs)."""
