"""The embedded target: the server (server.py) and the child-process runner (embedded.py)."""
