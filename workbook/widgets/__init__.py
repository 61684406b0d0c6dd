"""Interactive views for the lessons. Each view keeps its state in a plain object that tests drive from Python."""
