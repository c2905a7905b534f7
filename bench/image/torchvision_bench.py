#!/usr/bin/python3
"""torchvision+PIL speed on the image corpus's ~1 MP JPEGs, one thread, and
stoker's Go benchmarks on the same files in the same run, with the ratios.

  /usr/bin/python3 bench/image/torchvision_bench.py [--seconds 5] [--go] [--tags turbojpeg]

Measures (images/s, one thread):
  torchvision from JPEG bytes:   Image.open(bytes).convert("RGB") -> Resize(256) -> CenterCrop(224)
                                 -> ToTensor -> Normalize
  torchvision from decoded:      the same from an already decoded PIL image
  PIL decode alone:              Image.open(bytes).convert("RGB") with the pixels loaded
With --go it then runs `go test -bench` (GOMAXPROCS=1: -cpu 1) for BenchmarkGoJPEGDecode,
BenchmarkTransform/F32 and BenchmarkItem of preprocess/image, repeats the torchvision
measurement, and prints the three target ratios against the better of the two torchvision runs,
both per wall second and per CPU second (the latter is steadier on a shared machine).
"""
import argparse
import glob
import io
import os
import re
import subprocess
import sys
import time

import torch
from PIL import Image
from torchvision import transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FILES = sorted(glob.glob(os.path.join(ROOT, "preprocess/image/testdata/corpus/bench_*.jpg")))


def rate(fn, items, seconds):
    """(images per wall second, images per CPU second) of fn over items,
    repeated for at least `seconds` of wall time. CPU time is the process's
    (one thread here), which other work on a shared machine disturbs less."""
    for it in items:  # warm up
        fn(it)
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        for it in items:
            fn(it)
        n += len(items)
        el = time.perf_counter() - start
        if el >= seconds:
            return n / el, n / (time.process_time() - cpu)


def torchvision_rates(seconds):
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    blobs = [open(f, "rb").read() for f in FILES]
    decoded = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs]

    def from_bytes(b):
        return tf(Image.open(io.BytesIO(b)).convert("RGB"))

    def decode(b):
        im = Image.open(io.BytesIO(b)).convert("RGB")
        im.load()
        return im

    return {
        "torchvision from JPEG bytes": rate(from_bytes, blobs, seconds),
        "torchvision from decoded pixels": rate(tf, decoded, seconds),
        "PIL decode alone": rate(decode, blobs, seconds),
    }


def go_rates(seconds, tags):
    out = ""
    for pattern in ("^(BenchmarkGoJPEGDecode|BenchmarkDecode|BenchmarkItem)$", "^BenchmarkTransform$/^F32$"):
        cmd = ["go", "test", "./preprocess/image/", "-run", "^$", "-cpu", "1",
               "-bench", pattern, "-benchtime", f"{seconds}s"]
        if tags:
            cmd += ["-tags", tags]
        out += subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rates = {}
    for line in out.splitlines():
        name = re.match(r"(Benchmark\S+?)(-\d+)?\s", line)
        wall = re.search(r"([\d.]+) images/s", line)
        cpu = re.search(r"([\d.]+) images/cpu-s", line)
        if name and wall and cpu:
            rates[name.group(1)] = (float(wall.group(1)), float(cpu.group(1)))
    return out, rates


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--go", action="store_true")
    p.add_argument("--tags", default="")
    a = p.parse_args()
    torch.set_num_threads(1)
    if not FILES:
        sys.exit("no bench_*.jpg in preprocess/image/testdata/corpus")
    print(f"{len(FILES)} files: {', '.join(os.path.basename(f) for f in FILES)}")
    first = torchvision_rates(a.seconds)
    for k, (w, c) in first.items():
        print(f"{k:34s} {w:8.1f} images/s {c:8.1f} images/cpu-s")
    if not a.go:
        return
    out, go = go_rates(a.seconds, a.tags)
    print(out.strip())
    second = torchvision_rates(a.seconds)
    for k, (w, c) in second.items():
        print(f"{k:34s} {w:8.1f} images/s {c:8.1f} images/cpu-s (second run)")
    for i, unit in ((0, "wall"), (1, "cpu")):
        # torchvision's better run of the two, so the ratios are conservative.
        tv = {k: max(first[k][i], second[k][i]) for k in first}
        item = go["BenchmarkItem"][i]
        print()
        print(f"[{unit}] from decoded pixels: stoker TransformRGB / torchvision = "
              f"{go['BenchmarkTransform/F32'][i] / tv['torchvision from decoded pixels']:.2f}x (target >= 3)")
        print(f"[{unit}] from JPEG bytes: stoker item time / Go image/jpeg decode time = "
              f"{go['BenchmarkGoJPEGDecode'][i] / item:.2f} (target <= 1.15, pure-Go build)")
        print(f"[{unit}] from JPEG bytes: stoker item / torchvision = {item / tv['torchvision from JPEG bytes']:.2f}x "
              f"(target >= 2 with -tags turbojpeg){' [turbojpeg build]' if a.tags else ' [pure-Go build]'}")


if __name__ == "__main__":
    main()
