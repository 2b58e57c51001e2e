"""Signing and verifying bundles in the OpenSSF model-signing v1.x format (key method, ECDSA P-256).

Modules: ``keys`` (key files, trust set), ``dsse`` (the ``model.sig`` envelope), ``statement``
(the signed in-toto payload), ``sign`` and ``verify``. Nothing is re-exported here so that
importing one part stays cheap.
"""
