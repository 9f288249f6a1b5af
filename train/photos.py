"""Photos beside the faces: the public-domain and CC0 images that scikit-image ships, as a folder
for ``enhance-edge train --extra-data``.

The Yale faces are 27 people under lab light. These photos add fur, fabric, grass, brick, gravel,
stone, smoke, text and a person outdoors, so that the model meets textures it would otherwise only
see at run time. Every image here may be used to train a model that is shipped: each licence is
scikit-image's own statement in its ``skimage.data`` docstrings. Left out on purpose: the
astronaut portrait (kept unseen for the figures' "face unlike Yale" row) and images whose licence
scikit-image does not state.

    python -m enhance_edge.train.photos runs/photos     # writes the PNGs and LICENCES.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from enhance_edge.errors import MissingExtraError

# skimage.data function -> its licence as scikit-image states it.
PHOTOS = {
    "brick": "CC0 (CC0Textures)",
    "camera": "CC0 (Lav Varshney)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
    "rocket": "public domain (SpaceX)",
    "text": "public domain",
    "hubble_deep_field": "public domain (NASA)",
    "coins": "no known copyright restrictions",
}


def write_photos(folder: str | Path) -> list[Path]:
    """Write each photo of PHOTOS as NAME.png into ``folder``, with LICENCES.txt; return the PNGs."""
    try:
        from skimage import data
    except ImportError as exc:
        raise MissingExtraError("the extra training photos", "train", "scikit-image") from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PHOTOS:
        pixels = np.asarray(getattr(data, name)())
        path = folder / f"{name}.png"
        Image.fromarray(pixels).save(path)
        written.append(path)
    (folder / "LICENCES.txt").write_text(
        "Images from scikit-image's skimage.data, with the licences it states:\n"
        + "".join(f"{name}.png: {licence}\n" for name, licence in PHOTOS.items()))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m enhance_edge.train.photos FOLDER")
    for written_path in write_photos(sys.argv[1]):
        print(written_path)
