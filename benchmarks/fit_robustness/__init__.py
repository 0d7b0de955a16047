"""Sections of bench_fit_robustness.py: each module exposes ``run(args) -> dict`` of flat figures."""
