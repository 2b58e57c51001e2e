"""Root conftest: registers the shared fixture modules under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.moto",
    "tests.fixtures.keys",
    "tests.fixtures.models",
    "tests.fixtures.bundles",
]
