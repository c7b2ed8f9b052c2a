// Reading the RelayKey process tree from /proc: worker pids, their command lines and their
// resident memory.
import { readFileSync, readdirSync } from 'node:fs'

export function childPids (parent: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // field 4 (after the parenthesised command name) is the parent pid
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === parent) out.push(Number(entry))
    } catch {}
  }
  return out
}

/** resident set size in bytes, or 0 if the process is gone */
export function rssBytes (pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const match = /VmRSS:\s+(\d+) kB/.exec(status)
    return match === null ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

/** the process's command line, argument by argument ([] if it is gone) */
export function commandLine (pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== '')
  } catch {
    return []
  }
}
