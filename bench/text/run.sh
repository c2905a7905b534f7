#!/usr/bin/env bash
# Measures stoker's text path and Hugging Face tokenizers in one run on the
# same corpus and prints the ratios (stoker MB/s ÷ HF MB/s) per thread count.
#
#   bench/text/run.sh [count]     # from the repository root; count: go -count (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-3}
nm=${STOKER_ORACLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stoker-oracles}/node/node_modules
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test ./preprocess/text -run '^$' -bench 'EncodeCorpus' -benchtime 5x -count "$count" | tee -a "$out"
for tok in bert-base-uncased gpt2; do
  for th in 1 $(nproc); do
    RAYON_NUM_THREADS=$th NODE_PATH=$nm node bench/text/hf_bench.js "preprocess/text/tokenizers/$tok.json" | tee -a "$out"
  done
done
# Best Go figure per (tokenizer, threads) against the HF figure, for wall
# time (MB/s) and CPU time (cpu-MB/s: bytes per CPU-second, the fair
# per-core figure when other work shares the machine).
awk '
  /^BenchmarkEncodeCorpus/ { split($1, a, "/"); th = a[3]; sub(/threads=/, "", th); sub(/-[0-9]+$/, "", th); k = a[2] " " th
                             for (i = 1; i < NF; i++) { if ($(i+1) == "MB/s" && $i > go[k]) go[k] = $i; if ($(i+1) == "cpu-MB/s" && $i > gc[k]) gc[k] = $i } }
  /^hf / { th = $3; sub(/threads=/, "", th); k = $2 " " th; hf[k] = $4; hc[k] = $6 }
  END { for (k in hf) printf "ratio %s threads: wall stoker %.2f / HF %.2f MB/s = %.2fx; cpu stoker %.2f / HF %.2f MB/s per CPU-second = %.2fx\n", k, go[k], hf[k], go[k] / hf[k], gc[k], hc[k], gc[k] / hc[k] }
' "$out" | sort
