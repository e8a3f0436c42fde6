"""What a run shows while it goes: the full-screen view (`view.py`, `screen.py`) and the metrics
endpoint a Prometheus scrapes (`exposition.py`), both fed by the supervisor's hooks (`feed.py`).

The numbers they show are kept as plain values (`state.py`); the charts are text (`chart.py`).
"""
