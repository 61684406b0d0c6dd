"""Offline tools that built the shipped models: the training corpus and the training run.

Never imported by `import workbook`: they pull in `transformers`, `tokenizers` and `tqdm`, which the
lessons do not need at import time. Run them as `python -m workbook.training.corpus` and
`python -m workbook.training.train`.
"""
