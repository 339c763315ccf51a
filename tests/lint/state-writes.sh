#!/bin/bash
# Only odrsd/vm.c writes a VM's state (struct vm): every other file of odrsd/
# and tools/ asks it (vm_request_*, vm_on_*). Flags any `X->state =` / `X.state =` outside vm.c, except a libvirt
# job's (virt_job: job->state, vm->job.state, probe.state) and a designated
# initializer of another struct (`.state = f(..)` at a line's start, as in a
# registry proposal) unless it names a VM_ state. Exit 0 clean, 1 not.
cd "$(dirname "$0")/../.." || exit 1
bad=$(git ls-files 'odrsd/*.c' 'odrsd/*.h' 'tools/*.c' | grep -v '^odrsd/vm\.c$' | xargs grep -nE '(->|\.)state[[:space:]]*=[^=]' |
	grep -vE '(\<job|\<probe)(->|\.)state[[:space:]]*=' |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*\.state[[:space:]]*=[[:space:]]*[^V[:space:]]')
[ -z "$bad" ] && exit 0
echo "lint-state-writes: a VM's state is written outside odrsd/vm.c (fire an event instead):"
printf '  %s\n' "$bad"
exit 1
