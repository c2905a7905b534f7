#!/bin/sh
# Regenerates the image corpus (testdata/corpus) from photographs shipped in
# Debian packages (python3-skimage's data directory) with real tools:
# cjpeg/jpegtran (libjpeg-turbo-progs), ImageMagick 6 (/usr/bin/convert), cwebp.
# Output is deterministic for a given set of tool versions. Run from anywhere:
#   sh preprocess/image/testdata/make_corpus.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/corpus"
bad="$here/bad"
sk=/usr/lib/python3/dist-packages/skimage/data
IM=/usr/bin/convert
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$bad"
rm -f "$out"/* "$bad"/*

# ppm SRC GEOMETRY NAME: a PPM of SRC resized to GEOMETRY (ImageMagick syntax, "" = as is).
ppm() {
	if [ -n "$2" ]; then $IM "$1" -resize "$2" "$tmp/$3.ppm"; else $IM "$1" "$tmp/$3.ppm"; fi
}

# --- JPEG: chroma subsampling, progressive, grayscale --------------------------
ppm $sk/coffee.png "" coffee
cjpeg -quality 90 -sample 2x2 -outfile "$out/coffee_420.jpg" "$tmp/coffee.ppm"
cjpeg -quality 90 -sample 2x1 -outfile "$out/coffee_422.jpg" "$tmp/coffee.ppm"
cjpeg -quality 90 -sample 1x1 -outfile "$out/coffee_444.jpg" "$tmp/coffee.ppm"
cjpeg -quality 85 -progressive -outfile "$out/coffee_progressive.jpg" "$tmp/coffee.ppm"
ppm $sk/chelsea.png "" chelsea
cjpeg -quality 92 -sample 2x1 -outfile "$out/chelsea_422.jpg" "$tmp/chelsea.ppm"
# 4:1:1 and 4:1:0 (TurboJPEG 2.1 has no name for 4:1:0: the turbojpeg build
# gives it to Go's decoder); a JPEG below 256 px, enlarged by the resize.
cjpeg -quality 90 -sample 4x1 -outfile "$out/chelsea_411.jpg" "$tmp/chelsea.ppm"
cjpeg -quality 90 -sample 4x2 -outfile "$out/chelsea_410.jpg" "$tmp/chelsea.ppm"
ppm $sk/coffee.png "203x151!" coffee_small
cjpeg -quality 90 -sample 2x2 -outfile "$out/coffee_203x151_420_upscale.jpg" "$tmp/coffee_small.ppm"
cjpeg -quality 75 -sample 1x2 -outfile "$out/chelsea_440.jpg" "$tmp/chelsea.ppm"
cjpeg -quality 90 -grayscale -outfile "$out/chelsea_gray.jpg" "$tmp/chelsea.ppm"
ppm $sk/astronaut.png "" astronaut
cjpeg -quality 90 -progressive -sample 1x1 -outfile "$out/astronaut_progressive_444.jpg" "$tmp/astronaut.ppm"
# Odd sizes exercise the upsampler's right and bottom edges.
ppm $sk/motorcycle_left.png "601x401!" moto_odd
cjpeg -quality 88 -outfile "$out/motorcycle_601x401_420.jpg" "$tmp/moto_odd.ppm"
cjpeg -quality 88 -progressive -sample 2x1 -outfile "$out/motorcycle_601x401_422_progressive.jpg" "$tmp/moto_odd.ppm"
# Chroma planes 1 and 2 samples wide: libjpeg replicates instead of fancy upsampling there.
ppm $sk/chelsea.png "3x5!" narrow3
cjpeg -quality 95 -outfile "$out/chelsea_3x5_420.jpg" "$tmp/narrow3.ppm"
ppm $sk/coffee.png "4x300!" narrow4
cjpeg -quality 95 -sample 2x1 -outfile "$out/coffee_4x300_422.jpg" "$tmp/narrow4.ppm"
$IM $sk/chelsea.png -resize "1x1!" "$out/chelsea_1x1.png"
# Restart markers.
cjpeg -quality 88 -restart 2 -outfile "$out/motorcycle_601x401_restart.jpg" "$tmp/moto_odd.ppm"
# The JPEGs skimage ships as they are.
cp $sk/rocket.jpg "$out/rocket.jpg"
$IM $sk/camera.png "$tmp/camera.pgm"
cjpeg -quality 90 -outfile "$out/camera_gray.jpg" "$tmp/camera.pgm"

# --- CMYK (Adobe) JPEGs from ImageMagick ---------------------------------------
$IM $sk/coffee.png -colorspace CMYK -quality 90 "$out/coffee_cmyk.jpg"
$IM $sk/chelsea.png -colorspace CMYK -quality 90 -sampling-factor 2x2,1x1,1x1,2x2 "$out/chelsea_cmyk_subsampled.jpg"

# --- About one megapixel: the benchmark files (bench_*) ------------------------
ppm $sk/retina.jpg "1200x1200!" retina
cjpeg -quality 90 -outfile "$out/bench_retina_1200.jpg" "$tmp/retina.ppm"
ppm $sk/motorcycle_right.png "1230x830!" moto
cjpeg -quality 90 -outfile "$out/bench_motorcycle_1230x830.jpg" "$tmp/moto.ppm"
ppm $sk/coffee.png "1200x800!" coffee_big
cjpeg -quality 90 -outfile "$out/bench_coffee_1200x800.jpg" "$tmp/coffee_big.ppm"
ppm $sk/astronaut.png "1024x1024!" astro_big
cjpeg -quality 92 -outfile "$out/bench_astronaut_1024.jpg" "$tmp/astro_big.ppm"
ppm $sk/chelsea.png "1260x838!" chelsea_big
cjpeg -quality 88 -outfile "$out/bench_chelsea_1260x838.jpg" "$tmp/chelsea_big.ppm"

# --- Sizes: 64 px to 6000 px on the long side, upscaling, 2x, extreme aspects ---
ppm $sk/motorcycle_left.png "6000x2400!" huge
cjpeg -quality 30 -outfile "$out/motorcycle_6000x2400.jpg" "$tmp/huge.ppm"
ppm $sk/chelsea.png "64x43!" tiny
cjpeg -quality 90 -outfile "$out/chelsea_64x43.jpg" "$tmp/tiny.ppm"
$IM $sk/chelsea.png -resize "64x43!" "$out/chelsea_64x43.png"
ppm $sk/rocket.jpg "200x133!" small
cjpeg -quality 90 -outfile "$out/rocket_200x133_upscale.jpg" "$tmp/small.ppm"
$IM $sk/coffee.png -resize "250x167!" "$out/coffee_250x167_upscale.png"
ppm $sk/motorcycle_left.png "512x768!" two
cjpeg -quality 90 -outfile "$out/motorcycle_512x768_exact2x.jpg" "$tmp/two.ppm"
ppm $sk/coffee.png "4000x300!" wide
cjpeg -quality 80 -outfile "$out/coffee_4000x300_wide.jpg" "$tmp/wide.ppm"
ppm $sk/rocket.jpg "300x4000!" tall
cjpeg -quality 80 -outfile "$out/rocket_300x4000_tall.jpg" "$tmp/tall.ppm"
$IM $sk/chelsea.png -resize "1500x100!" "$out/chelsea_1500x100_wide.png"
$IM $sk/chelsea.png -resize "256x256!" "$out/chelsea_256_noresize.png"
$IM $sk/coffee.png -resize "257x225!" "$out/coffee_257x225.png"

# --- PNG: RGB, RGBA, palette, grey, 16-bit -------------------------------------
$IM $sk/astronaut.png -resize "512x512!" -crop 512x256+0+128 +repage "$out/astronaut_512x256_rgb_exact2x.png"
cp $sk/horse.png "$out/horse_rgba.png"
$IM $sk/chelsea.png -resize "330x220!" \( +clone -fx "0.3+0.7*i/w" -colorspace gray \) -alpha off -compose copy_opacity -composite PNG32:"$out/chelsea_rgba_gradient.png"
cp $sk/green_palette.png "$out/green_palette.png"
$IM $sk/coffee.png -colors 200 PNG8:"$out/coffee_palette.png"
cp $sk/camera.png "$out/camera_gray.png"
$IM $sk/coffee.png -resize "200x133!" -depth 16 PNG48:"$out/coffee_rgb16.png"
$IM $sk/chelsea.png -resize "200x133!" -alpha set -channel A -evaluate set 80% +channel -depth 16 PNG64:"$out/chelsea_rgba16.png"
$IM $sk/moon.png -depth 16 -evaluate multiply 0.004 "$tmp/moon16.png"
$IM "$tmp/moon16.png" -define png:bit-depth=16 -define png:color-type=0 "$out/moon_gray16.png"
$IM $sk/moon.png -colorspace gray -depth 8 -alpha set -channel A -evaluate set 50% +channel PNG:"$out/moon_gray_alpha.png"

# --- GIF, BMP, WebP -------------------------------------------------------------
$IM $sk/chelsea.png "$out/chelsea.gif"
$IM $sk/coffee.png -resize "300x200!" BMP3:"$out/coffee.bmp"
$IM $sk/chelsea.png -colors 64 -type Palette -compress none BMP3:"$out/chelsea_palette.bmp"
cwebp -quiet -q 90 $sk/coffee.png -o "$out/coffee_lossy.webp"
$IM "$out/chelsea_rgba_gradient.png" -resize "301x201!" "$tmp/alpha_odd.png"
cwebp -quiet -q 80 -alpha_q 50 "$tmp/alpha_odd.png" -o "$out/chelsea_301x201_alpha_lossy.webp"
cwebp -quiet -lossless $sk/chelsea.png -o "$out/chelsea_lossless.webp"

# --- Binary PPM and PGM (decoded pixels), written with PIL from files above ------
/usr/bin/python3 - "$out" "$bad" <<'PY'
import sys
from PIL import Image
out, bad = sys.argv[1], sys.argv[2]
im = Image.open(out + "/coffee.bmp").convert("RGB")
ppm = b"P6\n# coffee.bmp's pixels, written by make_corpus.sh\n%d %d\n255\n" % im.size + im.tobytes()
open(out + "/coffee_300x200_comment.ppm", "wb").write(ppm)
g = Image.open(out + "/camera_gray.png").convert("L")
open(out + "/camera_gray.pgm", "wb").write(b"P5 %d %d 255\n" % g.size + g.tobytes())
open(bad + "/coffee_cut.ppm", "wb").write(ppm[:5000])
open(bad + "/rgb16.ppm", "wb").write(b"P6\n4 2\n65535\n" + bytes(4 * 2 * 6))
open(bad + "/plain_p3.ppm", "wb").write(b"P3\n2 1\n255\n255 0 0  0 255 0\n")
PY

# --- Files PIL reads in its own way ----------------------------------------------
# A GIF whose first frame covers part of its logical screen (PIL: the screen,
# index 0 around the frame; GIFs with a transparent index below); a 16-bit grey PNG with a transparent value (Go
# widens it to NRGBA64, PIL keeps mode "I" and clips); a CMYK JPEG without the
# Adobe marker (PIL inverts every CMYK JPEG); an animated WebP (rejected).
$IM $sk/chelsea.png -resize "150x100!" -set page 220x160+40+30 "$out/chelsea_150x100_on_220x160_screen.gif"
$IM $sk/moon.png -resize "160x160!" -depth 16 -evaluate multiply 0.006 -define png:bit-depth=16 -define png:color-type=0 "$tmp/moon16_small.png"
/usr/bin/python3 - "$out" "$bad" "$tmp" <<'PY'
import struct, sys
from PIL import Image
out, bad, tmp = sys.argv[1:4]
g = Image.open(tmp + "/moon16_small.png")
g.save(out + "/moon_gray16_trns.png", transparency=200)
data = open(out + "/coffee_cmyk.jpg", "rb").read()
i, kept = 2, bytearray(data[:2])
while data[i + 1] != 0xDA:  # copy the marker segments up to the scan, less APP14
    n = struct.unpack(">H", data[i + 2:i + 4])[0]
    if data[i + 1] != 0xEE:
        kept += data[i:i + 2 + n]
    i += 2 + n
open(out + "/coffee_cmyk_no_adobe_marker.jpg", "wb").write(bytes(kept + data[i:]))
# Decompression bombs: headers declaring 4000x4000 (a progressive JPEG; a
# 16-bit RGBA PNG) and almost no data; decoders size their buffers from the
# header before they fail (limits and DecodeBudget tests).
open(bad + "/bomb_progressive_4000x4000.jpg", "wb").write(bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb0043000302020302020303030304030304050805050404050a070706080c0a0c0c0b0a0b0b0d0e12100d0e110e0b0b1016101113141515150c0f171816141812141514ffdb00430103040405040509050509140d0b0d1414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414ffc20011080fa00fa003011100021101031101ffc40014000100000000000000000000000000000000ffc4001501010100000000000000000000000000000004ffda000c030100021003100000010000000000000000ffd9"))
open(bad + "/bomb_rgba16_4000x4000.png", "wb").write(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000fa000000fa01006000000beef3f410000000c49444154789c6360a03d00000064000186643c350000000049454e44ae426082"))
# GIFs with a transparent index (PIL's convert("RGB") gives it its table's
# colour): one with the global table; one whose frame, smaller than the
# screen, uses a local table (the global one permuted, so the wrong table
# shows) and is surrounded by the transparent index.
def most_common(im):
    return max(range(256), key=im.histogram().__getitem__)
g = Image.open(out + "/chelsea.gif")
g.save(out + "/chelsea_transparent.gif", transparency=most_common(g))
d = bytearray(open(out + "/chelsea_150x100_on_220x160_screen.gif", "rb").read())
assert d[10] == 0xF7 and d[13 + 768:13 + 770] == b"\x21\xf9" and d[13 + 776] == 0x2C and d[13 + 785] == 0
table = bytes(d[13:13 + 768])
d[13:13 + 768] = b"".join(table[i:i + 3] for i in range(765, -1, -3))
d[13 + 771] |= 1  # graphic control: transparency on, index below
d[13 + 774] = most_common(Image.open(out + "/chelsea_150x100_on_220x160_screen.gif").crop((40, 30, 190, 130)))
d[13 + 785] = 0x87  # image descriptor: a local table of 256 colours follows
d[13 + 786:13 + 786] = table
open(out + "/chelsea_local_table_transparent_on_screen.gif", "wb").write(bytes(d))
a = Image.open(out + "/coffee_257x225.png").convert("RGB")
a.save(bad + "/coffee_animated.webp", save_all=True, append_images=[a.rotate(90)], duration=100)
PY

# --- Bad inputs (no goldens: every decoder must reject them) --------------------
cp $sk/truncated.jpg "$bad/skimage_truncated.jpg"
head -c 20000 "$out/coffee_420.jpg" > "$bad/coffee_420_cut_20000.jpg"
head -c 30000 "$out/coffee_progressive.jpg" > "$bad/coffee_progressive_cut_30000.jpg"
head -c 5000 "$out/coffee_rgb16.png" > "$bad/coffee_rgb16_cut.png"
head -c 3000 "$out/chelsea.gif" > "$bad/chelsea_cut.gif"
head -c 100 "$out/coffee.bmp" > "$bad/coffee_cut.bmp"
# Cb sampled 2x2 beside Y and Cr at 1x1: libjpeg (PIL) reads it; Go's decoder
# and TurboJPEG refuse it (documented).
cjpeg -quality 90 -sample 1x1,2x2,1x1 -outfile "$bad/coffee_cb_only_subsampled.jpg" "$tmp/coffee_small.ppm"
# RLE-compressed BMP: PIL reads it, golang.org/x/image/bmp does not (documented).
$IM $sk/chelsea.png -resize "120x80!" -colors 64 -type Palette -compress RLE BMP3:"$bad/chelsea_palette_rle8.bmp"
printf 'not an image at all' > "$bad/text.txt"
: > "$bad/empty.jpg"
du -sh "$out" "$bad"
