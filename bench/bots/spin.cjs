// 1 ms of CPU under Node, the counterpart of spin.py.
//
// Node 20 has no per-thread CPU clock (process.cpuUsage() counts every thread of the
// process, so two worker threads spinning at once would each stop at half their share, and
// /proc/thread-self/schedstat is only refreshed at scheduler ticks). So spin() counts the
// thread's time on the CPU itself: it reads the monotonic clock in a tight loop and adds up
// the steps between reads, leaving out any step longer than GAP_MS, which is time the thread
// was not running (preempted). Measured on the benchmark machine, 1,000 spins cost
// 1.05-1.08 ms of CPU each, alone or with two threads and a competing process on two cores.
"use strict";

const SPIN_MS = 1.0;
const GAP_MS = 0.05;

function spin(ms = SPIN_MS) {
  let onCpu = 0;
  let last = performance.now();
  let x = 0;
  while (onCpu < ms) {
    for (let i = 0; i < 50; i++) x += i;
    const now = performance.now();
    const step = now - last;
    last = now;
    if (step < GAP_MS) onCpu += step;
  }
  return x;
}

module.exports = { spin, SPIN_MS };
