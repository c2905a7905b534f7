#!/usr/bin/env bash
# Regenerates the goldens of the service integration test from the bundled
# samples with the project's reference tools (see /work/shared/tools):
#   images: torchvision's ImageNet eval transform (oracle-image), stored as
#           the uint8 pixels it normalised (exact: ToTensor yields k/255).
#   texts:  Hugging Face tokenizers 0.23.2 (oracle-tokenize), max length 128.
# Needs Debian's python3-torchvision and node/npm. Run from the repo root.
set -euo pipefail
shared=${STOKER_SHARED:-../shared}
out=internal/service/testdata
tmp=$(mktemp -d); trap 'rm -rf $tmp' EXIT
/usr/bin/python3 "$shared/tools/oracle-image" --out "$tmp" bench/samples/images/* || true  # the truncated sample is expected to fail
/usr/bin/python3 - "$tmp" "$out/images.u8.gz" <<'PY'
import gzip, json, os, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
names = sorted(f[:-4] for f in os.listdir(src) if f.endswith(".npy"))
with gzip.open(dst, "wb") as f:
    f.write((json.dumps(names) + "\n").encode())
    for n in names:
        v = np.load(os.path.join(src, n + ".npy"))
        u = np.rint((v * std + mean) * 255).astype(np.int64)
        assert u.min() >= 0 and u.max() <= 255, n
        u8 = u.astype(np.uint8)
        back = ((u8.astype(np.float32) / np.float32(255)) - mean) / std
        assert np.array_equal(back.astype(np.float32), v), n + ": not exactly invertible"
        f.write(u8.tobytes())
PY
# The last line of texts.txt is invalid UTF-8 and is dead-lettered, so it has no golden.
head -n -1 bench/samples/texts.txt | "$shared/tools/oracle-tokenize" "$shared/data/tokenizers/bert-base-uncased.json" --max-length 128 \
  | gzip -9 > "$out/texts.bert.jsonl.gz"
