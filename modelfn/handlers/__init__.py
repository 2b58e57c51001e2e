"""Platform entry points. Deliberately empty: each handler module is imported on its own, by path."""
