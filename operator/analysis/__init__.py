"""Analysis: turning metric measurements into verdicts (judge.py, pure) and taking the
measurements (queries.py and providers/, the only I/O here)."""
