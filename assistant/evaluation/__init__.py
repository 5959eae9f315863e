"""Evaluation: test sets and logs in, metrics and reports out (used by the CLI, console and training)."""
