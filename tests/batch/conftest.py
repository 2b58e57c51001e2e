"""Loaded models for batch tests: the shared tiny regression model and a small scikit-learn classifier.

Both are published (signed, pushed) to a local store and loaded through the verified loader, the
same path the storage handler takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelfn.loader import LoadedBundle, load_bundle
from tests.fixtures.bundles import Published, publish
from tests.fixtures.keys import SigningKey


@pytest.fixture
def tiny(local_published: Published) -> LoadedBundle:
    """The tiny model (x float32 [N, 4] -> y float32 [N, 3]), verified and loaded."""
    return load_bundle(local_published.settings)


@pytest.fixture
def classifier_published(
    tmp_path: Path, signing_key: SigningKey, sklearn_classifier: tuple[Any, npt.NDArray[np.float32]]
) -> Published:
    """The iris classifier (label int64 [N], probabilities float32 [N, 3]) signed into a local store."""
    from modelfn.packaging import package

    model, sample = sklearn_classifier
    out = tmp_path / "iris-bundle"
    package(model, sample, out, name="iris", version=1)
    return publish(out, str(tmp_path / "models"), signing_key)


@pytest.fixture
def classifier(classifier_published: Published) -> LoadedBundle:
    """The iris classifier, verified and loaded."""
    return load_bundle(classifier_published.settings)
