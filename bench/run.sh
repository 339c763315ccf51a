#!/bin/bash
# make bench: every benchmark, one after the other, each in its own lab under
# LAB_PREFIX (default odrsbench, so it can run beside the tests' labs). Results
# go to bench/results/ (RESULTS overrides); see bench/README.md.
#   access.sh   access time to a sleeping VM: bare restore, odrs ARP and SYN
#               paths, drop-and-retransmit (ROUNDS, default 10)
#   shrink.sh   image size, save and access time per shrink mode for a
#               guest with a full page cache (ROUNDS, CACHE MiB)
#   activity.sh CPU cost of measuring a VM's TCP activity at 0-100 kframes/s:
#               odrsd's per-interval filter vs every frame to user space
#               (tcpdump) vs polling libvirt's counters (ROUNDS, RATES, DURATION)
#   access_size.sh  access time vs snapshot size, 64-512 MiB (the paper's Fig. 3)
#   memsaved.sh memory saved vs access interval: lab run and simulation (Fig. 4)
#   datapath.sh ARP reply latency and odrsd CPU under 10k-200k frames/s with
#               1k-100k sleeping VMs in the table
#   burst.sh    8/16/32 VMs woken at once vs wake_concurrency and wake_spacing
#   retrain.sh  retraining the switches for 1,000 sleeping VMs on a role move
#   scale.sh    start, reload, list and memory with 1k-100k VMs
# Needs root. Whatever happens, the lab is torn down on exit.
[ "$(id -u)" = 0 ] || { echo "make bench needs root (sudo make bench)"; exit 1; }
export LAB_PREFIX=${LAB_PREFIX:-odrsbench}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/../tests/lab/lab.sh"
set -u
# Each benchmark raises and removes its own lab; this catches what an
# interrupted one leaves behind.
trap lab_down EXIT

[ -x "$LAB_ODRSD" ] && [ -x "$LAB_ODRSCTL" ] ||
	{ echo "no $LAB_ODRSD or $LAB_ODRSCTL: run make all first"; exit 1; }

status=0
for b in access shrink activity access_size memsaved datapath burst retrain scale; do
	echo "=== bench/$b.sh"
	"$BENCH_DIR/$b.sh" || { echo "=== bench/$b.sh FAILED"; status=1; }
done
exit $status
