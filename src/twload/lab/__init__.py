"""Real-kernel reproductions in network namespaces (root only)."""
