#!/bin/sh
# Regenerates the torchvision goldens of the corpus with the reference tool
# /work/shared/tools/oracle-image (PIL decode, Resize(256), CenterCrop(224),
# ToTensor, Normalize with ImageNet statistics; torchvision 0.14 on Debian 12).
#
# Each golden is stored compactly as golden/<file>.png: the 224x224 uint8 RGB
# pixels that, pushed through ToTensor+Normalize in float32, give torchvision's
# tensor. golden_pack.py checks that this holds bit for bit for every element
# before writing the PNG (and fails otherwise), so the PNG carries exactly the
# information of torchvision's float tensor.
#   sh preprocess/image/testdata/make_goldens.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
until /usr/bin/python3 -c 'import torchvision' 2>/dev/null; do
	echo "waiting for python3-torchvision to be installed..." >&2
	sleep 10
done
mkdir -p "$here/golden"
rm -f "$here/golden"/*.png
/usr/bin/python3 /work/shared/tools/oracle-image --out "$tmp" "$here"/corpus/*
/usr/bin/python3 "$here/golden_pack.py" "$tmp" "$here/golden"
# A second, odd-sized transform on a few files: Resize(160), CenterCrop(127).
mkdir -p "$here/golden_r160_c127" "$tmp/odd"
rm -f "$here/golden_r160_c127"/*.png
/usr/bin/python3 /work/shared/tools/oracle-image --resize 160 --crop 127 --out "$tmp/odd" \
	"$here/corpus/coffee_257x225.png" "$here/corpus/chelsea_1500x100_wide.png" \
	"$here/corpus/coffee_250x167_upscale.png" "$here/corpus/motorcycle_601x401_420.jpg"
/usr/bin/python3 "$here/golden_pack.py" "$tmp/odd" "$here/golden_r160_c127"
du -sh "$here/golden" "$here/golden_r160_c127"
