"""One renderer module per deploy target (``modelfn deploy --target …``)."""
