# bench/gpu/bundle.sh: sourced by the device scripts of bench/gpu.
#
# unpack_bundle ROOT BIN NAME...: extracts ROOT/gpu-bundle/stoker-gpu.tar.gz
# (made by `make gpu-bundle`, carried by the device tool) over BIN when it
# is there, every time (a warm machine keeps the BIN of an earlier call,
# which may be older than the bundle), then checks that each NAME is an
# executable in BIN; exits 2 otherwise.
unpack_bundle() {
	local root=$1 bin=$2
	shift 2
	if [ -f "$root/gpu-bundle/stoker-gpu.tar.gz" ]; then
		mkdir -p "$bin" && tar -xzf "$root/gpu-bundle/stoker-gpu.tar.gz" -C "$bin" || exit 2
	fi
	for f in "$@"; do
		if [ ! -x "$bin/$f" ]; then
			echo "no $bin/$f: run make gpu-bundle here and carry gpu-bundle" >&2
			exit 2
		fi
	done
}
