"""A bundle in a store: which versions exist, what ``latest`` means, push and pull.

The one layer that knows both the bundle format (``modelfn.bundle``) and where bundles live
(``modelfn.store``); neither of those imports the other.
"""
