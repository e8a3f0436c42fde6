"""The workers' snapshots merged into seconds and one summary (sans-IO: no files, processes or clocks)."""
