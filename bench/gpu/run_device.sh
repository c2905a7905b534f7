#!/usr/bin/env bash
# bench/gpu/run_device.sh: run the GPU parity tests and benchmarks on the
# lent GPU machine, from binaries built beforehand on a machine without a
# GPU (no Go or CUDA toolkit is needed here, only the NVIDIA driver).
#
# Build first (on the development machine, from the repository root):
#   make gpu-bundle
# which packs the cuda test binaries, the cuda stoker and BUILD_INFO into
# gpu-bundle/stoker-gpu.tar.gz (bin/ itself is too big to travel: the
# device tool's tree limit is 64 MiB). Then run, with the device tool,
# from the repository root, carrying gpu-bundle (the script unpacks it):
#   bash bench/gpu/run_device.sh [stage ...]
# Stages (default: info parity bench): info, parity, bench, stoker;
# `run_device.sh summarise bench.txt` re-prints a bench file's summary.
# Each stays well under the device tool's 10-minute limit; run them as
# separate commands if the budget is tight. Results go to $OUT (default
# ./gpu-results): one log per stage, benchmark output in the Go benchmark
# format (feed it to benchstat), and summary.txt.
set -u
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/bin
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(info parity bench)
status=0

note() { echo "== $*" | tee -a "$OUT/summary.txt"; }

. "$ROOT/bench/gpu/bundle.sh"

run_info() {
	note "machine"
	{
		cat "$BIN/BUILD_INFO" 2>/dev/null
		date -u +"run: %FT%TZ"
		uname -a
		nproc
		grep -m1 'model name' /proc/cpuinfo
		free -g | head -2
		nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max,clocks.max.sm --format=csv
	} 2>&1 | tee "$OUT/machine.txt" | tee -a "$OUT/summary.txt"
	nvidia-smi -q >"$OUT/nvidia-smi-q.txt" 2>&1
	ldd "$BIN/kernels.cuda.test" >"$OUT/ldd.txt" 2>&1
}

run_parity() {
	note "parity: kernels (device vs CPU path, random + real images, every layout/dtype, poisoned output)"
	(cd "$ROOT/kernels" && timeout 500 "$BIN/kernels.cuda.test" -test.v -test.count=1 \
		-test.run 'TestDevice|TestMeasureCeilings|TestRandomImagesMatchCPU|TestRealImagesMatchCPU') \
		>"$OUT/parity-kernels.log" 2>&1
	rc=$?
	grep -E '^(--- FAIL|FAIL|PASS|ok)|H2D|not bit-identical' "$OUT/parity-kernels.log" | head -40 | tee -a "$OUT/summary.txt"
	note "parity: kernels exit $rc"
	[ $rc -eq 0 ] || { tail -5 "$OUT/parity-kernels.log" | tee -a "$OUT/summary.txt"; status=1; }

	note "parity: preprocess/gpu (GPU Processor vs CPU Processor on encoded items)"
	(cd "$ROOT/preprocess/gpu" && timeout 300 "$BIN/preprocess-gpu.cuda.test" -test.v -test.count=1) \
		>"$OUT/parity-gpu-processor.log" 2>&1
	rc=$?
	grep -E '^(--- FAIL|FAIL|PASS|ok)|not bit-identical' "$OUT/parity-gpu-processor.log" | head -20 | tee -a "$OUT/summary.txt"
	note "parity: preprocess/gpu exit $rc"
	[ $rc -eq 0 ] || { tail -5 "$OUT/parity-gpu-processor.log" | tee -a "$OUT/summary.txt"; status=1; }
}

run_bench() {
	note "bench: ceilings, GPU stage and CPU stage (batch 256 of ~1 MP decoded images -> 224x224)"
	(cd "$ROOT/kernels" && timeout 540 "$BIN/kernels.cuda.test" -test.run '^$' \
		-test.bench 'Ceilings|GPUStage|CPUStage' -test.benchtime 20x -test.count 3 -test.benchmem) \
		>"$OUT/bench.txt" 2>&1
	rc=$?
	grep -E '^(Benchmark|goos|goarch|cpu|pkg)' "$OUT/bench.txt" | tee -a "$OUT/summary.txt"
	[ $rc -eq 0 ] || { note "bench exit $rc"; tail -5 "$OUT/bench.txt" | tee -a "$OUT/summary.txt"; status=1; }
	summarise_bench "$OUT/bench.txt" | tee -a "$OUT/summary.txt"
}

# summarise_bench prints the GPU/CPU ratio per dtype (medians of items/s)
# and the fraction of the pinned H2D ceiling the GPU stage reached.
summarise_bench() {
	awk '
		/^Benchmark(GPU|CPU)Stage\// {
			split($1, p, "/"); kind = (p[1] ~ /GPU/) ? "gpu" : "cpu"; dt = p[2]; sub(/-[0-9]+$/, "", dt)
			for (i = 2; i < NF; i++) if ($(i+1) == "items/s") v[kind, dt] = v[kind, dt] " " $i
		}
		function median(s,   a, n, i, j, t) {
			n = split(s, a, " ")
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
			return n ? a[int((n + 1) / 2)] : 0
		}
		END {
			for (k in v) { split(k, q, SUBSEP); if (q[1] == "gpu") dts[q[2]] = 1 }
			for (dt in dts) {
				g = median(v["gpu", dt]); c = median(v["cpu", dt])
				printf "%s: GPU stage %.0f items/s, CPU stage %.0f items/s, ratio %.1fx (target >= 10x)\n", dt, g, c, (c > 0 ? g / c : 0)
			}
		}' "$1"
	grep -E '^BenchmarkGPUStage' "$1" | awk '{
		for (i = 2; i < NF; i++) if ($(i+1) == "stage-of-H2D-ceiling") printf "%s: stage reaches %.0f%% of pinned H2D bandwidth (target >= 80%%)\n", $1, 100 * $i
	}'
}

run_stoker() {
	if [ ! -x "$BIN/stoker" ]; then
		note "stoker: bin/stoker missing (make build-cuda), skipped"
		return
	fi
	note "stoker bench --device all (decode + transform, end to end)"
	timeout 540 "$BIN/stoker" bench --device all --synthetic 1155x866,1000x1000 --synthetic-count 32 \
		--batch 64,256 --inflight 3 --seconds 5 --warmup 2 --windows 3 \
		--out "$OUT/stoker-bench.json" --markdown "$OUT/stoker-bench.md" >"$OUT/stoker-bench.txt" 2>&1
	rc=$?
	tail -30 "$OUT/stoker-bench.txt" | tee -a "$OUT/summary.txt"
	[ $rc -eq 0 ] || { note "stoker bench exit $rc"; status=1; }
}

if [ "${1:-}" = summarise ]; then # summarise FILE: re-read a bench.txt
	summarise_bench "$2"
	exit
fi
unpack_bundle "$ROOT" "$BIN" kernels.cuda.test preprocess-gpu.cuda.test
for s in "${stages[@]}"; do
	case $s in
	info) run_info ;;
	parity) run_parity ;;
	bench) run_bench ;;
	stoker) run_stoker ;;
	*) echo "unknown stage $s (want info, parity, bench, stoker)" >&2; exit 2 ;;
	esac
done
note "done, status $status"
exit $status
