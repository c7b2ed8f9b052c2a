// CPU time a process and its descendants (a cluster primary and its workers) used, read from
// Linux /proc. On a small, shared machine req/s moves with whatever else runs; CPU time per
// request moves far less, so the reports print both. Elsewhere the numbers are simply absent.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

let ticksPerSecond: number | null = null

/** microseconds of user + system CPU used so far by `pid` and every live descendant; null off Linux */
export function treeCpuMicros (pid: number | undefined): number | null {
  if (pid === undefined || process.platform !== 'linux') return null
  ticksPerSecond ??= clockTicks()
  const parents = new Map<number, number>()
  const ticks = new Map<number, number>()
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return null
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue
    const stat = readStat(Number(entry))
    if (stat === null) continue
    parents.set(stat.pid, stat.ppid)
    ticks.set(stat.pid, stat.ticks)
  }
  if (!ticks.has(pid)) return null
  let total = 0
  for (const [candidate, used] of ticks) {
    for (let p: number | undefined = candidate; p !== undefined && p > 1; p = parents.get(p)) {
      if (p === pid) {
        total += used
        break
      }
    }
  }
  return total * 1e6 / ticksPerSecond
}

/** microseconds of user + system CPU used so far by exactly these processes (no descendants); exited ones count 0 */
export function pidsCpuMicros (pids: readonly number[]): number | null {
  if (process.platform !== 'linux') return null
  ticksPerSecond ??= clockTicks()
  let total = 0
  for (const pid of pids) total += readStat(pid)?.ticks ?? 0
  return total * 1e6 / ticksPerSecond
}

function readStat (pid: number): { pid: number; ppid: number; ticks: number } | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return null // it exited while we looked
  }
  // the command name is in parentheses and may hold spaces; the fields after it are fixed
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15
  return { pid, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) }
}

/** clock ticks per second (CLK_TCK), the unit of /proc CPU times; 100 when getconf cannot say */
export function clockTicks (): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isFinite(value) && value > 0 ? value : 100
  } catch {
    return 100
  }
}
