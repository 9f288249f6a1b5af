"""Fixtures of the export tests."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def eight_subjects(tmp_path_factory):
    """8 subjects (not Yale's names), subject k with k + 2 images, so that a split's image count
    shows its subject. The seeded split puts person1 in test with seed 0 and person6 with seed 1
    (person4 and person3 in validation)."""
    root = tmp_path_factory.mktemp("eight")
    rng = np.random.default_rng(0)
    for subject in range(8):
        (root / f"person{subject}").mkdir()
        for index in range(subject + 2):
            Image.fromarray(rng.integers(0, 256, (30, 26), np.uint8)).save(root / f"person{subject}" / f"{index}.png")
    return root
