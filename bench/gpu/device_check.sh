#!/usr/bin/env bash
# bench/gpu/device_check.sh: every GPU check of issues 5 and 6 in one call
# of the device tool, inside a time budget, most important first.
#
# A lent GPU comes with 15 minutes of device time, machine start included,
# so the checks run as one call that ends well inside its limit and leaves
# room to run it again. On this machine (no GPU):
#   make gpu-bundle              # gpu-bundle/stoker-gpu.tar.gz, ~19 MB
# then the device tool's run, from the repository root:
#   carry ["gpu-bundle"], timeout_s 560,
#   command: bash bench/gpu/device_check.sh
# The tarball is needed because the tree that travels must stay under
# 64 MiB: the repository is ~23 MB, the unpacked binaries ~62 MB.
#
# Stages, in order (each skipped when the budget is nearly spent):
#   info          GPU, driver, PCIe, cores, the build's commit
#   image-parity  kernel vs CPU path (random and real images, every layout
#                 and dtype, NaN-poisoned output), bit-identity with the C
#                 emulation, concurrent batches, Close; GPU Processor vs CPU
#                 Processor on encoded items
#   text-parity   GPU WordPiece vs CPU Processor on the whole corpus (5 specs)
#                 and vs the Hugging Face goldens; hostile cases; concurrency
#   image-bench   pinned H2D / D2H / DRAM ceilings; GPU stage vs CPU stage on
#                 all cores, batch 256 of ~1 MP decoded images -> 224x224
#   text-bench    GPU vs CPU text path at 100 ... 100,000 documents
#   hf            Hugging Face tokenizers encode_batch on all cores, same batches
#   stoker        stoker bench --device all, image (from JPEG and from PPM,
#                 i.e. decoded pixels) and text
#   sanitizer     compute-sanitizer memcheck over a small image and text run
#   summary       the table the issues ask for (printed last)
# Arguments name a subset of stages; BUDGET (seconds, default 480) bounds
# the whole run. Everything is written under $OUT (default ./gpu-results),
# at most 8 files, so that all of it comes back: summary.txt, machine.txt,
# parity.log, bench.txt, text-bench.txt, text-hf.txt, stoker.txt,
# sanitizer.log.
set -u
OUT=${OUT:-$PWD/gpu-results}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/bin} # a dry run elsewhere may point it at CPU-build binaries
BUDGET=${BUDGET:-480}
START=$SECONDS
status=0
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(info image-parity text-parity image-bench text-bench hf stoker sanitizer summary)

note() { echo "== $*" | tee -a "$OUT/summary.txt"; }

# within CAP: the seconds a stage may take, at most CAP and what is left of
# the budget; 0 (stage skipped) when under 20 s are left.
within() {
	local left=$((BUDGET - (SECONDS - START)))
	if [ "$left" -lt 20 ]; then echo 0; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# run_step NAME CAP LOG DIR CMD...: runs CMD in DIR with a timeout, appends
# its output to LOG, and records failures.
run_step() {
	local name=$1 cap=$2 log=$3 dir=$4
	shift 4
	local t
	t=$(within "$cap")
	if [ "$t" -eq 0 ]; then
		note "$name: skipped, budget spent"
		status=1
		return 1
	fi
	local t0=$SECONDS
	echo "### $name (timeout ${t}s): $*" >>"$log"
	(cd "$dir" && timeout "$t" "$@") >>"$log" 2>&1
	local rc=$?
	note "$name: exit $rc after $((SECONDS - t0)) s"
	if [ $rc -ne 0 ]; then
		status=1
		tail -8 "$log" | tee -a "$OUT/summary.txt"
	fi
	return $rc
}

stage_info() {
	note "machine"
	{
		cat "$BIN/BUILD_INFO"
		date -u +"run: %FT%TZ"
		uname -r
		echo "cores: $(nproc)"
		grep -m1 'model name' /proc/cpuinfo
		free -g | head -2
		nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current,clocks.max.sm,clocks.sm --format=csv
		python3 -c 'import tokenizers; print("python tokenizers", tokenizers.__version__)'
		command -v compute-sanitizer || echo "compute-sanitizer: not found"
	} 2>&1 | tee "$OUT/machine.txt" | tee -a "$OUT/summary.txt"
}

stage_image_parity() {
	run_step "image parity: kernel" 120 "$OUT/parity.log" "$ROOT/kernels" \
		"$BIN/kernels.cuda.test" -test.v -test.count=1 -test.run 'TestDevice|TestMeasureCeilings'
	run_step "image parity: GPU Processor" 90 "$OUT/parity.log" "$ROOT/preprocess/gpu" \
		"$BIN/preprocess-gpu.cuda.test" -test.v -test.count=1 -test.run 'TestDeviceProcess'
}

stage_text_parity() {
	run_step "text parity" 150 "$OUT/parity.log" "$ROOT/preprocess/gpu" \
		"$BIN/preprocess-gpu.cuda.test" -test.v -test.count=1 -test.run 'TestDeviceText'
}

stage_image_bench() {
	run_step "image bench" 150 "$OUT/bench.txt" "$ROOT/kernels" \
		"$BIN/kernels.cuda.test" -test.run '^$' -test.bench 'Ceilings|GPUStage|CPUStage' \
		-test.benchtime 10x -test.count 3 -test.benchmem
}

stage_text_bench() {
	run_step "text bench" 150 "$OUT/text-bench.txt" "$ROOT/preprocess/gpu" \
		"$BIN/preprocess-gpu.cuda.test" -test.run '^$' -test.bench 'TextGPU|TextCPU' \
		-test.benchtime 1s -test.count 3 -test.benchmem
}

stage_hf() {
	run_step "hf" 90 "$OUT/text-hf.txt" "$ROOT" \
		python3 bench/gpu/hf_text_bench.py preprocess/text/tokenizers/bert-base-uncased.json \
		preprocess/text/testdata/corpus.txt.gz --seconds 2
}

stage_stoker() {
	local common=(--device all --inflight 3 --warmup 1 --windows 3 --seconds 1.5)
	run_step "stoker bench: image from JPEG" 90 "$OUT/stoker.txt" "$ROOT" \
		"$BIN/stoker" bench --pipeline image "${common[@]}" --batch 256 \
		--synthetic 1155x866,1000x1000 --synthetic-count 32
	run_step "stoker bench: image from PPM (decoded pixels)" 90 "$OUT/stoker.txt" "$ROOT" \
		"$BIN/stoker" bench --pipeline image "${common[@]}" --batch 256 \
		--synthetic 1155x866,1000x1000 --synthetic-count 32 --synthetic-format ppm
	gunzip -c "$ROOT/preprocess/text/testdata/corpus.txt.gz" >/tmp/stoker-corpus.txt
	run_step "stoker bench: text" 90 "$OUT/stoker.txt" "$ROOT" \
		"$BIN/stoker" bench --pipeline text "${common[@]}" --batch 1000,10000 \
		--lines /tmp/stoker-corpus.txt
}

stage_sanitizer() {
	if ! command -v compute-sanitizer >/dev/null; then
		note "sanitizer: compute-sanitizer not found, skipped"
		return
	fi
	run_step "sanitizer: image kernel" 90 "$OUT/sanitizer.log" "$ROOT/kernels" \
		compute-sanitizer --tool memcheck --error-exitcode 9 \
		"$BIN/kernels.cuda.test" -test.count=1 -test.run 'TestDeviceRandomImagesMatchCPU|TestDeviceConcurrentBatches'
	run_step "sanitizer: text kernels" 90 "$OUT/sanitizer.log" "$ROOT/preprocess/gpu" \
		compute-sanitizer --tool memcheck --error-exitcode 9 \
		"$BIN/preprocess-gpu.cuda.test" -test.count=1 -test.run 'TestDeviceTextHostileCases'
}

stage_summary() {
	note "summary ($((SECONDS - START)) s, budget $BUDGET s, status $status)"
	{
		grep -E '^(--- FAIL|FAIL)' "$OUT/parity.log" 2>/dev/null | head -20
		echo "parity tests passed: $(grep -c '^--- PASS' "$OUT/parity.log" 2>/dev/null), failed: $(grep -c '^--- FAIL' "$OUT/parity.log" 2>/dev/null)"
		[ -f "$OUT/bench.txt" ] && bash "$ROOT/bench/gpu/run_device.sh" summarise "$OUT/bench.txt"
		grep -E 'GB/s' "$OUT/bench.txt" 2>/dev/null | grep Ceilings | head -3
		[ -f "$OUT/text-bench.txt" ] && OUT=$OUT bash "$ROOT/bench/gpu/run_text_device.sh" table
		grep -E '^###|^ +(device|cpu|cuda) ' "$OUT/stoker.txt" 2>/dev/null
		grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" 2>/dev/null
	} 2>&1 | tee -a "$OUT/summary.txt"
}

. "$ROOT/bench/gpu/bundle.sh"
unpack_bundle "$ROOT" "$BIN" kernels.cuda.test preprocess-gpu.cuda.test stoker
for s in "${stages[@]}"; do
	case $s in
	info) stage_info ;;
	image-parity) stage_image_parity ;;
	text-parity) stage_text_parity ;;
	image-bench) stage_image_bench ;;
	text-bench) stage_text_bench ;;
	hf) stage_hf ;;
	stoker) stage_stoker ;;
	sanitizer) stage_sanitizer ;;
	summary) stage_summary ;;
	*) echo "unknown stage $s" >&2; exit 2 ;;
	esac
done
exit $status
