// Audit log segment names carry everything needed to order and lock them without opening them:
//
//   audit-log.<writerId>.<firstSeq, 16 digits>.<owner>.ndjson
//   owner = <pid>-<process start time in clock ticks>-<pipeline nonce>
//
// Releases before the log spilled to `audit-spill.<…same…>.ndjson` files; those are still
// recognised, so an upgrade replays what the old release left.
//
// - Sorting names sorts each writer's files by their first seq. A file holds one contiguous seq
//   range and ranges never overlap, so replaying in name order is replaying in seq order.
// - The owner is the pipeline that writes or replays the file. Taking a file over is one
//   rename() to a new owner: atomic, so of two processes racing for a file exactly one wins.
// - pid + start time tells a live owner from a dead one even after the pid is reused; the nonce
//   tells two pipelines in one process apart.
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'

/** what a writer's log segments start with; LEGACY_PREFIX is the older releases' spill files */
export const LOG_PREFIX = 'audit-log.'
export const LEGACY_PREFIX = 'audit-spill.'
const SUFFIX = '.ndjson'
const SEQ_DIGITS = 16
const WRITER_ID = /^[A-Za-z0-9_-]{1,64}$/
const OWNER = /^(\d+)-(\d+)-([0-9a-f]+)$/

export interface LogFileName {
  writerId: string
  firstSeq: number
  owner: string
  /** LOG_PREFIX, or LEGACY_PREFIX for an older release's spill file */
  prefix?: string
}

export function isValidWriterId (id: string): boolean {
  return WRITER_ID.test(id)
}

export function formatLogFileName (name: LogFileName): string {
  return `${name.prefix ?? LOG_PREFIX}${name.writerId}.${String(name.firstSeq).padStart(SEQ_DIGITS, '0')}.${name.owner}${SUFFIX}`
}

/** null for anything that is not a log segment or legacy spill file (other files may share the dir) */
export function parseLogFileName (file: string): LogFileName | null {
  const prefix = file.startsWith(LOG_PREFIX) ? LOG_PREFIX : file.startsWith(LEGACY_PREFIX) ? LEGACY_PREFIX : null
  if (prefix === null || !file.endsWith(SUFFIX)) return null
  const parts = file.slice(prefix.length, -SUFFIX.length).split('.')
  if (parts.length !== 3) return null
  const [writerId, seq, owner] = parts as [string, string, string]
  if (!WRITER_ID.test(writerId) || seq.length !== SEQ_DIGITS || !OWNER.test(owner)) return null
  const firstSeq = Number(seq)
  if (!Number.isSafeInteger(firstSeq)) return null
  return { writerId, firstSeq, owner, prefix }
}

/** a fresh owner token for one pipeline in this process */
export function newOwner (): string {
  return `${process.pid}-${startTicks(process.pid) ?? 0}-${randomBytes(4).toString('hex')}`
}

/** whether the process named in `owner` still runs (the same process, not a reuse of its pid) */
export function ownerAlive (owner: string): boolean {
  const match = OWNER.exec(owner)
  if (match === null) return false
  const pid = Number(match[1])
  const ticks = Number(match[2])
  if (HAS_PROC) {
    const now = startTicks(pid)
    return now !== null && (ticks === 0 || now === ticks)
  }
  // no /proc (not Linux): fall back to "some process has this pid"
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const HAS_PROC = existsSync('/proc/self/stat')

/** field 22 of /proc/<pid>/stat; null when the process is gone (or a zombie) or there is no /proc */
function startTicks (pid: number): number | null {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // the command name (field 2) may hold spaces and parentheses; count fields after its ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // a zombie (killed, not yet reaped by its parent or init) is as dead as a writer gets
  if (fields[0] === 'Z' || fields[0] === 'X') return null
  const ticks = Number(fields[19])
  return Number.isSafeInteger(ticks) ? ticks : null
}
