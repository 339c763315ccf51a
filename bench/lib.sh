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

# vm_sections N [BASE]: N [vm sI] sections, sI at 198.18.BASE.0 + I (default
# BASE 16), on into 198.19.x past the lab's /16, MAC 52:54:01 + I.
vm_sections() {
	awk -v n="$1" -v base="${2:-16}" 'BEGIN {
		for (i = 1; i <= n; i++) {
			a = base * 256 + i
			printf "[vm s%d]\nip = 198.%d.%d.%d\nmac = 52:54:01:%02x:%02x:%02x\n", i,
				18 + int(a / 65536), int(a / 256) % 256, a % 256,
				int(i / 65536) % 256, int(i / 256) % 256, i % 256
		}
	}'
}
