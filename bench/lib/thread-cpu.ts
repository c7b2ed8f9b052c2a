// CPU time of this process's threads, read from Linux /proc/self/task: the event loop's thread
// (its id is the process id) apart from the others (the SQLite writer thread, libuv's pool).
// Clock ticks (10 ms), so a figure per event needs a run of seconds.
import { readdirSync, readFileSync } from 'node:fs'
import { clockTicks } from './process-cpu.js'

let ticksPerSecond: number | null = null

export interface ThreadCpu {
  /** µs of user + system CPU of the event loop's thread */
  main: number
  /** µs of every other thread of this process */
  others: number
}

/** null off Linux */
export function threadCpuMicros (): ThreadCpu | null {
  if (process.platform !== 'linux') return null
  ticksPerSecond ??= clockTicks()
  let main = 0
  let others = 0
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    } catch {
      continue // the thread ended meanwhile
    }
    // fields after the command name, which may hold spaces: utime and stime are 14th and 15th
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[11]) + Number(fields[12])
    if (Number(tid) === process.pid) main += ticks
    else others += ticks
  }
  return { main: main * 1e6 / ticksPerSecond, others: others * 1e6 / ticksPerSecond }
}
