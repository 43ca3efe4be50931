"""Benchmarks: scripts that start local fakes and print figures (``make bench``)."""
