"""`twload doctor`: pure rules (rules.py) and the target probe (probe.py)."""
