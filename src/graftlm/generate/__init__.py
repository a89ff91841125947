"""Synthetic data generation by the LAB method: one pipeline per leaf type, run concurrently and resumably.

`graftlm.generate.run.run_generate` is the entry point; `freeform`, `grounded` and `knowledge` hold the
pipelines, `graftlm/prompts/*.j2` the teacher prompts, `parse` the pure parsers of their answers.
"""
