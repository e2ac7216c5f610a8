// How busy the machine is, and how much of that is this run: other work on a 2-core machine
// skews every number, so each run reports it.
import { readFileSync } from 'node:fs'
import { sleep } from './stats.js'

const TICKS_PER_SECOND = 100 // USER_HZ on Linux

export interface CpuSnapshot {
  /** Busy and total ticks of all CPUs (/proc/stat). */
  busy: number
  total: number
  /** Ticks used by this process and its reaped children (/proc/self/stat). */
  own: number
}

/**
 * The numeric fields of /proc/<pid>/stat after the command name (state is [0], so utime,
 * stime, cutime and cstime are [11..14]).
 */
function statFields (pid: number | 'self'): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number)
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function processCpuSec (pid: number): number {
  const f = statFields(pid)
  return ((f[11] ?? 0) + (f[12] ?? 0)) / TICKS_PER_SECOND
}

export function cpuSnapshot (): CpuSnapshot {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v
    const busy = user + nice + system + irq + softirq + steal
    const f = statFields('self')
    const own = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)
    return { busy, total: busy + idle + iowait, own }
  } catch {
    return { busy: NaN, total: NaN, own: NaN }
  }
}

export interface CpuReport { busyPct: number, busyCoreSec: number, ownCoreSec: number, otherCoreSec: number, wallSec: number }

/** Between two snapshots: machine busy share, and core-seconds of this run vs everything else. */
export function cpuBetween (a: CpuSnapshot, b: CpuSnapshot, wallSec: number): CpuReport {
  const busy = b.busy - a.busy
  const own = b.own - a.own
  return {
    busyPct: (100 * busy) / (b.total - a.total),
    busyCoreSec: busy / TICKS_PER_SECOND,
    ownCoreSec: own / TICKS_PER_SECOND,
    otherCoreSec: Math.max(0, busy - own) / TICKS_PER_SECOND,
    wallSec
  }
}

/**
 * Waits (at most `maxSec`) until the machine is below `maxBusyPct` busy over a 1 s window;
 * returns the last window's busy share.
 */
export async function waitForIdle (maxSec: number, maxBusyPct: number, log: (s: string) => void): Promise<number> {
  const deadline = Date.now() + maxSec * 1000
  for (let k = 0; ; k++) {
    const a = cpuSnapshot()
    await sleep(1000)
    const b = cpuSnapshot()
    const pct = (100 * (b.busy - a.busy)) / (b.total - a.total)
    if (!(pct >= maxBusyPct) || Date.now() >= deadline) {
      if (k > 0) log(`machine ${pct.toFixed(0)}% busy after waiting ${k} s`)
      return pct
    }
    if (k === 0) log(`machine ${pct.toFixed(0)}% busy; waiting up to ${maxSec} s for it to settle below ${maxBusyPct}%`)
  }
}
