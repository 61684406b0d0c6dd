"""Benchmarks: commands that measure, print a table and save numbers to data/benchmarks/<device>.json.

Run `python -m workbook.bench prefix`, `... speculative` or `... widgets`. argparse lives in
`__main__` only: each benchmark's `run` and measuring functions take keyword arguments.
"""
