// One redis-server child process for tests: loopback only, in the foreground, nothing persisted,
// and gone when the test process goes — however it ends (see `reapOnExit`).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseInfo, redisCommand } from './redis-command.js'

/** the port (or, for a cluster node, its bus port at port + 10000) was bound by someone else */
export class PortTakenError extends Error {
  override readonly name = 'PortTakenError'
}

export interface RedisProcess {
  readonly port: number
  readonly pid: number
  /** resolves with the exit code, null when a signal ended it */
  readonly exited: Promise<number | null>
  running (): boolean
  /** SIGTERM, SIGKILL after `graceMs`; resolves once the process is gone */
  stop (graceMs?: number): Promise<void>
  /** SIGKILL, as a crash would; resolves once the process is gone */
  kill (): Promise<void>
  /** what this run of the server logged */
  log (): string
}

export interface SpawnRedisOptions {
  port: number
  /** working directory (`--dir`): the log and, for cluster nodes, nodes-<port>.conf go here */
  dir: string
  /** further `--option value` arguments */
  args?: readonly string[]
  /** give up waiting for PING after this long */
  timeoutMs?: number
}

/** starts redis-server and resolves once this very process (not a stranger on the port) answers PING */
export async function spawnRedis (options: SpawnRedisOptions): Promise<RedisProcess> {
  const { port, dir } = options
  mkdirSync(dir, { recursive: true })
  const logFile = join(dir, `redis-${port}.log`)
  const fd = openSync(logFile, 'a')
  const logStart = statSync(logFile).size
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--dir', dir,
    '--save', '', '--appendonly', 'no', ...(options.args ?? []),
  ]
  let child: ChildProcess
  try {
    child = hasSetpriv()
      ? spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'redis-server', ...args], { detached: false, stdio: ['ignore', fd, fd] })
      : spawn('redis-server', args, { detached: false, stdio: ['ignore', fd, fd] })
  } finally {
    closeSync(fd)
  }
  let spawnError: Error | null = null
  child.on('error', (err) => { spawnError = err })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    live.delete(child)
    resolve(code)
  }))
  reapOnExit(child)
  // Unreferenced: a test that forgets stop() must still let its process end, and the exit hook
  // then kills the server. stop() and kill() take the reference back while they wait.
  child.unref()

  const log = (): string => {
    try {
      return readFileSync(logFile).subarray(logStart).toString()
    } catch {
      return ''
    }
  }
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  const stop = async (graceMs = 3000): Promise<void> => {
    if (!running()) return
    child.ref()
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
  const kill = async (): Promise<void> => {
    if (!running()) return
    child.ref()
    child.kill('SIGKILL')
    await exited
  }

  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  for (;;) {
    if (spawnError !== null) throw new Error(`could not start redis-server: ${(spawnError as Error).message}`)
    if (!running()) {
      await exited
      const text = log()
      if (text.includes('Address already in use')) throw new PortTakenError(`port ${port} (or ${port + 10000}) is taken:\n${text}`)
      throw new Error(`redis-server on port ${port} exited with ${child.exitCode ?? child.signalCode}:\n${text}`)
    }
    if (Date.now() > deadline) {
      await kill()
      throw new Error(`redis-server on port ${port} did not answer PING within ${options.timeoutMs ?? 10_000} ms:\n${log()}`)
    }
    // a stranger holding the port may accept and never answer: stop waiting when ours exits
    if (await Promise.race([answersAs(port, child.pid!), exited.then(() => false)])) break
    await sleep(20)
  }
  return { port, pid: child.pid!, exited, running, stop, kill, log }
}

/** a temp dir removed by `remove()` or, failing that, when the test process exits */
export function makeTempDir (prefix: string): { path: string; remove (): void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  dirs.add(path)
  reapOnExit(null)
  return {
    path,
    remove () {
      rmSync(path, { recursive: true, force: true })
    },
  }
}

async function answersAs (port: number, pid: number): Promise<boolean> {
  try {
    if (await redisCommand(port, ['PING'], { timeoutMs: 1000 }) !== 'PONG') return false
    const info = parseInfo(String(await redisCommand(port, ['INFO', 'server'], { timeoutMs: 1000 })))
    // A stranger already on this port answers too; ours will fail to bind and exit.
    return Number(info.get('process_id')) === pid
  } catch {
    return false
  }
}

// Process-wide by nature: whatever this test process started dies with it. An 'exit' hook covers
// a normal end, a failed assertion and an uncaught exception; setpriv's parent-death signal
// covers a test process that is killed outright (SIGKILL, OOM), where no hook runs.
const live = new Set<ChildProcess>()
const dirs = new Set<string>()
let hooked = false
let setpriv: boolean | null = null

function reapOnExit (child: ChildProcess | null): void {
  if (child !== null) live.add(child)
  if (hooked) return
  hooked = true
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL')
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })
}

function hasSetpriv (): boolean {
  setpriv ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true']).status === 0
  return setpriv
}
