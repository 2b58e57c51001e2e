"""Build-time framework adapters, one module per framework behind one protocol.

Nothing is re-exported here on purpose: importing ``modelfn.adapters`` must stay free of any
framework import. Pick an adapter through ``modelfn.adapters.registry``.
"""
