"""Helpers for tests and benchmarks: tiny models built from a config, and a committed tiny tokenizer."""
