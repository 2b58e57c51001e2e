"""Root conftest: registers the shared fixture modules under tests/fixtures/ (and the CI skip policy)."""

pytest_plugins = [
    "tests.fixtures.moto",
    "tests.fixtures.keys",
    "tests.fixtures.models",
    "tests.fixtures.bundles",
    "tests.fixtures.skips",
]
