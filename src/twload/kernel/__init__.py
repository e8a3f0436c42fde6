"""Thin adapters that read the kernel's own state (/proc, netlink, sysctls)."""
