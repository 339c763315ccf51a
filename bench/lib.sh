# Shared by the benchmarks: source it first, as
#   BENCH_DIR=$(cd "$(dirname "$0")" && pwd); . "$BENCH_DIR/lib.sh"
# It needs root, raises labs under LAB_PREFIX (default odrsbench, so a
# benchmark can run beside the tests' labs) and brings in the lab's shell API.
[ "$(id -u)" = 0 ] || { echo "${0##*/} needs root"; exit 1; }
export LAB_PREFIX=${LAB_PREFIX:-odrsbench}
. "$BENCH_DIR/../tests/lab/lab.sh"
. "$BENCH_DIR/../tests/lab/odrs.sh"
set -u -o pipefail

# ms SECONDS: "0.523456" -> "523.456"
ms() { awk -v s="$1" 'BEGIN { printf "%.3f", s * 1000 }'; }

# machine: one line on where the numbers come from (MEM: the guest's MiB).
machine() {
	echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
		"$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
		"kernel $(uname -r); guest: TCG (no KVM), 1 vCPU, $MEM MiB; snapshots on tmpfs ($LAB_DIR)"
}

# median: of the numbers on standard input, one a line ("-" if none).
median() {
	sort -g | awk '{ x[NR] = $1 }
		END { if (NR) printf "%.1f", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2; else printf "-" }'
}

# bench_lab VM IP MAC MEM_MIB [BALLAST_MIB] [CACHE_MIB]: raise a lab of one
# node and one client (torn down on exit) with the VM on n1, ready.
bench_lab() {
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
	trap lab_down EXIT
	step "raising lab '$LAB_PREFIX' (1 node, 1 client) and $1 ($4 MiB, TCG)"
	lab_up 1 1 > /dev/null || fail "lab_up"
	lab_vm_start n1 "$1" "$2" "$3" "$4" "${5:-0}" "${6:-0}" > /dev/null && lab_vm_wait_ready n1 "$1" 120 ||
		fail "$1 did not come up"
}

# memsim_build OUT: bench/memsim.c against build/libwake.a (make all first).
memsim_build() {
	local root pkgs="libpcap libvirt libvirt-qemu libxml-2.0 jansson inih libsystemd libcap-ng libcurl"
	root=$(cd "$BENCH_DIR/.." && pwd)
	step "building $1"
	# shellcheck disable=SC2046,SC2086 # word splitting of pkgs and of pkg-config's output is wanted
	cc -D_GNU_SOURCE -D_DEFAULT_SOURCE -I"$root/libwake" -I"$root/odrsd" $(pkg-config --cflags $pkgs) \
		-std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
		-Wno-unused-parameter -O2 -g -o "$1" "$BENCH_DIR/memsim.c" "$root/build/libwake.a" \
		$(pkg-config --libs $pkgs) -lnet -lev -lresolv -lpthread -lm
}
