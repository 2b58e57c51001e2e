"""Object stores for bundles, chosen by URL scheme (see ``modelfn.store.registry.store_for``)."""
