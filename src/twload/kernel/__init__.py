"""Thin adapters over the kernel: its own state (/proc, netlink, sysctls, TCP_INFO) and SO_LINGER's reset on close."""
