"""The peer harness: other model servers, each in its own virtual environment, measured like ``modelfn serve``."""
