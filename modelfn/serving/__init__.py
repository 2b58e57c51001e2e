"""The HTTP serving layer: framework-free request logic, a lean ASGI app, and lazily built OpenAPI docs.

Nothing here imports FastAPI/Starlette on the inference path (cold start); ``fastapi_app`` is
built only when someone asks for ``/docs`` or ``/openapi.json``.
"""
