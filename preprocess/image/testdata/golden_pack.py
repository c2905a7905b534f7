"""Packs oracle-image's float32 CHW tensors as 8-bit RGB PNGs, exactly.

  golden_pack.py NPY_DIR OUT_DIR

For each NPY_DIR/<name>.npy (not .rgb.npy) finds the uint8 image u such that
(float32(u)/255 - mean)/std, computed in float32 as torchvision computes it,
equals the tensor bit for bit, and writes OUT_DIR/<name>.png. Exits 1 if any
element has no such uint8 value.
"""
import os
import sys

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    levels = np.arange(256, dtype=np.float32)
    # table[c][u] as torch computes it: float32 division, then sub, then div.
    table = (levels[None, :] / np.float32(255) - MEAN[:, None]) / STD[:, None]
    table = table.astype(np.float32)
    bad = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".npy") or name.endswith(".rgb.npy"):
            continue
        t = np.load(os.path.join(src, name))
        assert t.dtype == np.float32 and t.shape[0] == 3, (name, t.dtype, t.shape)
        u = np.empty(t.shape, dtype=np.uint8)
        for c in range(3):
            idx = np.searchsorted(table[c], t[c])
            idx = np.clip(idx, 0, 255)
            u[c] = idx
            if not np.array_equal(table[c][idx], t[c]):
                print(f"{name}: channel {c} is not an exact uint8 level", file=sys.stderr)
                bad += 1
        Image.fromarray(np.ascontiguousarray(u.transpose(1, 2, 0)), "RGB").save(
            os.path.join(dst, name[: -len(".npy")] + ".png"), optimize=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
