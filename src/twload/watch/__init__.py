"""`twload watch`'s rows over a socket snapshot (pure); reading the snapshot is kernel/'s, showing it cli/'s."""
