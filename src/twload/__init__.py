"""twload: a load generator and TCP diagnostics kit for short-connection load tests."""

__version__ = "0.1.0"
