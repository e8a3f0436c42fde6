"""The load engine: workers with one event loop each, and the supervisor that runs them."""
