"""Metric providers: where analysis measurements come from (the only I/O in analysis)."""
