""""Check yourself" exercises, one module per lesson (`lesson1` … `lesson7`, matching `notebooks/0N_*.py`).

Every check returns a `CheckResult` (see `verdict`): right, wrong, or not answered yet while the
answer is still `None`, with an explanation either way, so a lesson never fails on an exercise. A first wrong
answer gets a hint; the second wrong try, or `check_*(..., reveal=True)`, gets the worked answer (`verdict.judge`).
"""
