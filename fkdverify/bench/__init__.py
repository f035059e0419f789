"""Benchmark grids: task expansion, runners (local processes, Ray), resume."""
