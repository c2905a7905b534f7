#!/usr/bin/env bash
# bench/gpu/run_text_device.sh: the GPU WordPiece tokenizer's parity tests
# and benchmarks (issue 6) on the lent GPU machine, from test binaries built
# beforehand on a machine without a GPU (only the NVIDIA driver is needed
# here, plus python3 with Hugging Face `tokenizers` for the reference).
#
# Build first (development machine, repository root):
#   make gpu-bundle            # gpu-bundle/stoker-gpu.tar.gz: the cuda test binaries and BUILD_INFO
# Then, with the device tool, from the repository root, carrying
# gpu-bundle (unpacked into bin/ here; bin/ itself is over the tool's
# 64 MiB tree limit):
#   bash bench/gpu/run_text_device.sh [stage ...]
# Stages (default: info parity bench hf summary):
#   info     machine, driver, build
#   parity   device vs CPU Processor on every corpus document (5 specs, batches
#            of 2,000 and the whole corpus), device vs the HF goldens, concurrent
#            batches, and the emulation tests again on this machine
#   bench    Go benchmarks: GPU path and CPU path (all cores) on batches of 100,
#            1,000, 10,000, 100,000 corpus documents; 3 batches in flight
#   hf       Hugging Face tokenizers encode_batch on all cores, same batches
#   summary  GPU docs/s ÷ HF docs/s per batch size (target >= 20x at 10,000)
#   table    the summary's table alone, on stdout
# Results go to $OUT (default ./gpu-results): one log per stage and summary.txt.
set -u
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/bin
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(info parity bench hf summary)
status=0

note() { echo "== $*" | tee -a "$OUT/summary.txt"; }

. "$ROOT/bench/gpu/bundle.sh"
need_bins() { unpack_bundle "$ROOT" "$BIN" kernels.cuda.test preprocess-gpu.cuda.test; }

run_info() {
	note "machine"
	{
		cat "$BIN/BUILD_INFO" 2>/dev/null
		date -u +"run: %FT%TZ"
		nproc
		grep -m1 'model name' /proc/cpuinfo
		nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max,clocks.max.sm --format=csv
		python3 -c 'import tokenizers; print("python tokenizers", tokenizers.__version__)'
	} 2>&1 | tee "$OUT/text-machine.txt" | tee -a "$OUT/summary.txt"
}

run_parity() {
	need_bins
	note "parity: kernels (WordPiece PTX, tables, emulation vs wordpiece.Encoder)"
	(cd "$ROOT/kernels" && timeout 300 "$BIN/kernels.cuda.test" -test.v -test.count=1 -test.run 'WordPiece|TextJob') \
		>"$OUT/text-parity-kernels.log" 2>&1
	rc=$?
	grep -E '^(--- FAIL|FAIL|PASS|ok)' "$OUT/text-parity-kernels.log" | head -20 | tee -a "$OUT/summary.txt"
	[ $rc -eq 0 ] || { note "parity: kernels exit $rc"; tail -5 "$OUT/text-parity-kernels.log" | tee -a "$OUT/summary.txt"; status=1; }

	note "parity: GPU text Processor vs CPU Processor and HF goldens (whole corpus, on the device)"
	(cd "$ROOT/preprocess/gpu" && timeout 500 "$BIN/preprocess-gpu.cuda.test" -test.v -test.count=1 \
		-test.run 'TestDeviceText|TestEmulatedText|TestTextProcessorErrors') \
		>"$OUT/text-parity-gpu.log" 2>&1
	rc=$?
	grep -E '^(--- FAIL|FAIL|PASS|ok)|identical|differ' "$OUT/text-parity-gpu.log" | head -60 | tee -a "$OUT/summary.txt"
	note "parity: preprocess/gpu exit $rc"
	[ $rc -eq 0 ] || { tail -5 "$OUT/text-parity-gpu.log" | tee -a "$OUT/summary.txt"; status=1; }
}

run_bench() {
	need_bins
	note "bench: GPU and CPU text paths, bert-base-uncased, max_length 128, padding longest, int64"
	(cd "$ROOT/preprocess/gpu" && timeout 560 "$BIN/preprocess-gpu.cuda.test" -test.run '^$' \
		-test.bench 'TextGPU|TextCPU' -test.benchtime 2s -test.count 3 -test.benchmem) \
		>"$OUT/text-bench.txt" 2>&1
	rc=$?
	grep -E '^(Benchmark|cpu:)' "$OUT/text-bench.txt" | tee -a "$OUT/summary.txt"
	[ $rc -eq 0 ] || { note "bench exit $rc"; tail -5 "$OUT/text-bench.txt" | tee -a "$OUT/summary.txt"; status=1; }
}

run_hf() {
	note "hf: Hugging Face tokenizers encode_batch, all $(nproc) cores"
	timeout 500 python3 "$ROOT/bench/gpu/hf_text_bench.py" "$ROOT/preprocess/text/tokenizers/bert-base-uncased.json" \
		"$ROOT/preprocess/text/testdata/corpus.txt.gz" --seconds 5 >"$OUT/text-hf.txt" 2>&1
	rc=$?
	tee -a "$OUT/summary.txt" <"$OUT/text-hf.txt"
	[ $rc -eq 0 ] || { note "hf exit $rc"; status=1; }
}

# summarise prints, per batch size, the median docs/s of the GPU path (one
# batch at a time, and 3 in flight), of the CPU path and HF's best, and
# the ratios.
run_summary() {
	note "summary: docs/s (median of the Go runs; HF best of its reps)"
	run_table | tee -a "$OUT/summary.txt"
}

# run_table prints the table alone (bench/gpu/device_check.sh uses it).
run_table() {
	awk '
		/^BenchmarkText(GPU|CPU|GPUInflight)\/docs=/ {
			split($1, p, "/"); kind = p[1]; sub(/^BenchmarkText/, "", kind); n = p[2]; sub(/docs=/, "", n); sub(/-[0-9]+$/, "", n)
			for (i = 2; i < NF; i++) {
				if ($(i+1) == "docs/s") v[kind, n] = v[kind, n] " " $i
				if ($(i+1) == "MB/s") m[kind, n] = m[kind, n] " " $i
			}
			sizes[n] = 1
		}
		/^hf docs=/ {
			for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "docs") n = kv[2]; if (kv[1] == "docs/s") h = kv[2]; if (kv[1] == "MB/s") hm = kv[2] }
			hf[n] = h; hfm[n] = hm; sizes[n] = 1
		}
		function median(s,   a, k, i, j, t) {
			k = split(s, a, " ")
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
			return k ? a[int((k + 1) / 2)] : 0
		}
		END {
			printf "%8s %12s %9s %14s %12s %12s %9s %9s %9s\n", "docs", "GPU docs/s", "GPU MB/s", "GPU x3 docs/s", "CPU docs/s", "HF docs/s", "HF MB/s", "GPU/HF", "GPU/CPU"
			for (n in sizes) order[++k] = n + 0
			for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (order[j] < order[i]) { t = order[i]; order[i] = order[j]; order[j] = t }
			for (i = 1; i <= k; i++) {
				n = order[i]; g = median(v["GPU", n]); c = median(v["CPU", n]); gi = median(v["GPUInflight", n])
				printf "%8d %12.0f %9.1f %14.0f %12.0f %12.0f %9.1f %8.1fx %8.1fx\n", n, g, median(m["GPU", n]), gi, c, hf[n], hfm[n], (hf[n] > 0 ? g / hf[n] : 0), (c > 0 ? g / c : 0)
			}
			print "target: GPU/HF >= 20x at 10000 documents, identical ids"
		}' $(ls "$OUT/text-bench.txt" "$OUT/text-hf.txt" 2>/dev/null) </dev/null
}

for s in "${stages[@]}"; do
	case $s in
	info) run_info ;;
	parity) run_parity ;;
	bench) run_bench ;;
	hf) run_hf ;;
	summary) run_summary ;;
	table) run_table; exit ;;
	*) echo "unknown stage $s (want info, parity, bench, hf, summary, table)" >&2; exit 2 ;;
	esac
done
note "done, status $status"
exit $status
