#!/usr/bin/env python3
"""Where the time of each slow ARP reply went, from what bench/datapath.sh keeps with KEEP=DIR.

    bench/slow_replies.py DIR/N-SERIES-RATE-ROUND ...

For each reply over 1 ms on c2's wire (PREFIX.pcap, paired with the last
request before it), one line:
- with PREFIX.sched (PERF_SCHED=1): when odrsd's loop thread was woken after
  the request and how long it then waited for a core (perf sched timehist's
  "sch delay"), and the tasks that ran on each CPU meanwhile;
- with PREFIX.samples (PERF_SAMPLES=1): per CPU, the perf samples (4000 Hz)
  taken between request and reply, by task ("idle" for the idle task;
  odrsd's on_idle_timer named apart).
PREFIX.offset holds CLOCK_REALTIME - CLOCK_MONOTONIC (tcpdump's clock and
perf's) and odrsd's PID.
"""
import collections
import os
import re
import subprocess
import sys

VM_IP = '198.18.16.1'
HZ = 4000


def slow_replies(pre):
    out = subprocess.run(['tcpdump', '-r', pre + '.pcap', '-nn', '-tt'], capture_output=True, text=True).stdout
    q, pairs = [], []
    for line in out.splitlines():
        t = float(line.split()[0])
        if 'Request who-has %s ' % VM_IP in line:
            q.append(t)
        elif 'Reply %s is-at ' % VM_IP in line and q:
            pairs.append((q[-1], t))
    return [(i + 1, a, b) for i, (a, b) in enumerate(pairs) if b - a > 0.001]


def sched(pre, pid, slow, off):
    th = subprocess.run(['perf', 'sched', 'timehist', '-w', '-i', pre + '.sched'], capture_output=True,
                        text=True).stdout
    runs, wakes = [], []
    for line in th.splitlines():
        m = re.match(r'\s*(\d+\.\d+)\s+\[(\d+)\]\s+(\S.*?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$', line)
        if m:
            end, run = float(m[1]), float(m[6]) / 1000
            runs.append((end - run, end, int(m[2]), m[3], float(m[5])))
            continue
        m = re.match(r'\s*(\d+\.\d+)\s+\[(\d+)\]\s+(\S+)\s+awakened:\s+(\S+)', line)
        if m:
            wakes.append((float(m[1]), m[3], m[4]))
    me = '[%s]' % pid
    for n, a, b in slow:
        a, b = a - off, b - off
        woke = next((w for w in wakes if w[2].endswith(me) and a <= w[0] <= b), None)
        ran = next((r for r in runs if r[3].endswith(me) and r[0] > a - 0.0001 and r[0] < b), None)
        busy = collections.Counter()
        for s, e, cpu, task, _ in runs:
            ov = min(e, b) - max(s, a)
            if ov > 0 and task != '<idle>':
                busy['cpu%d %s' % (cpu, task)] += ov
        print('%s #%d %.2f ms: odrsd woken %s, %s; meanwhile %s' % (
            os.path.basename(pre), n, (b - a) * 1000,
            'at %.2f ms (by %s)' % ((woke[0] - a) * 1000, woke[1]) if woke else 'before the request',
            'ran at %.2f ms after a wait of %.2f ms' % ((ran[0] - a) * 1000, ran[4]) if ran else 'on a CPU already',
            ', '.join('%s %.2f ms' % (k, v * 1000) for k, v in busy.most_common(3))))


def samples(pre, slow, off):
    lo, hi = min(a for _, a, _ in slow) - off - 0.01, max(b for _, _, b in slow) - off + 0.01
    txt = subprocess.run(['perf', 'script', '-G', '-i', pre + '.samples', '-F', 'comm,tid,cpu,time,ip,sym',
                          '--time', '%.6f,%.6f' % (lo, hi)], capture_output=True, text=True).stdout
    got = []
    for line in txt.splitlines():
        p = line.split()
        k = next((i for i, f in enumerate(p) if re.fullmatch(r'\[\d+\]', f)), None)
        if k is None or k + 1 >= len(p):
            continue
        comm = ' '.join(p[:k - 1])
        sym = p[k + 3].split('+')[0] if len(p) > k + 3 else ''
        who = 'idle' if comm.startswith('swapper') else comm + (':on_idle_timer' if sym == 'on_idle_timer' else '')
        got.append((float(p[k + 1].rstrip(':')), int(p[k].strip('[]')), who))
    for n, a, b in slow:
        a, b = a - off, b - off
        cells = []
        for cpu in sorted({c for _, c, _ in got}):
            c = collections.Counter(w for t, cp, w in got if cp == cpu and a <= t <= b)
            cells.append('cpu%d %d/%.0f %s' % (cpu, sum(c.values()), (b - a) * HZ,
                                               ', '.join('%s %d' % kv for kv in c.most_common(2)) or '-'))
        print('%s #%d %.2f ms: samples %s' % (os.path.basename(pre), n, (b - a) * 1000, ' | '.join(cells)))


for pre in sys.argv[1:]:
    off, pid = open(pre + '.offset').read().split()
    slow = slow_replies(pre)
    if not slow:
        continue
    if os.path.exists(pre + '.sched'):
        sched(pre, pid, slow, float(off))
    if os.path.exists(pre + '.samples'):
        samples(pre, slow, float(off))
