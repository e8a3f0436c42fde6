"""Reports over run folders."""
