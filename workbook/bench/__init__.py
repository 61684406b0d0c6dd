"""Benchmarks: commands that measure, print a table and save numbers to data/benchmarks/<device>.json.

Run `python -m workbook.bench prefix` or `python -m workbook.bench speculative`.
"""
