// One service the benchmark runs in its own process (upstream, bare proxy, RelayKey): spawned
// with a minimal environment, its output kept for the failure report, and stopped with SIGTERM
// (SIGKILL only when it ignores that).
import { spawn, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'

/** keep this much of a service's output: enough to explain a failure, bounded over a long run */
const OUTPUT_KEEP = 16_000

export interface ServiceOptions {
  name: string
  /** a compiled .js file, run with this Node */
  script: string
  args?: string[]
  /** options for node itself, before the script (cluster workers inherit them) */
  nodeArgs?: string[]
  /** the whole environment of the child; PATH is added */
  env: Record<string, string>
  cwd?: string
  /** open an IPC channel: the child reports readiness with process.send */
  ipc?: boolean
  /** run on these CPUs only (a taskset list such as '1' or '0,1'); null: wherever the OS likes */
  cpus?: string | null
}

export interface ExitStatus {
  code: number | null
  signal: NodeJS.Signals | null
}

export class ChildService {
  readonly name: string
  readonly #child: ChildProcess
  readonly #exited: Promise<ExitStatus>
  #exit: ExitStatus | null = null
  #stopRequested = false
  #output = ''

  constructor (options: ServiceOptions) {
    this.name = options.name
    const stdio: Array<'ignore' | 'pipe' | 'ipc'> = ['ignore', 'pipe', 'pipe']
    if (options.ipc === true) stdio.push('ipc')
    const argv = [...(options.nodeArgs ?? []), options.script, ...(options.args ?? [])]
    // taskset execs node in place, so the pid we hold is still node's
    const [command, args] = options.cpus == null
      ? [process.execPath, argv]
      : ['taskset', ['-c', options.cpus, process.execPath, ...argv]]
    this.#child = spawn(command, args, {
      env: { PATH: process.env.PATH ?? '', ...options.env },
      cwd: options.cwd,
      stdio,
    })
    this.#child.stdout!.on('data', (chunk: Buffer) => this.#keep(chunk))
    this.#child.stderr!.on('data', (chunk: Buffer) => this.#keep(chunk))
    this.#exited = new Promise((resolve) => {
      const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.#exit !== null) return
        this.#exit = { code, signal }
        resolve(this.#exit)
      }
      this.#child.once('exit', exited)
      // a process that never started (ENOENT and the like) emits no 'exit': treat it as one
      this.#child.once('error', (err) => {
        this.#keep(Buffer.from(`spawn error: ${err.message}\n`))
        if (this.#child.pid === undefined) exited(null, null)
      })
    })
  }

  get pid (): number | undefined {
    return this.#child.pid
  }

  /** the last output of the process, stdout and stderr interleaved */
  output (): string {
    return this.#output
  }

  /** resolves with the first IPC message of `type`; rejects when the process exits or time runs out */
  async message<T extends { type: string }> (type: string, timeoutMs: number): Promise<T> {
    const child = this.#child
    let onMessage: ((m: unknown) => void) | undefined
    const received = new Promise<T>((resolve) => {
      onMessage = (m: unknown) => {
        if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === type) resolve(m as T)
      }
      child.on('message', onMessage)
    })
    try {
      return await this.#race(received, timeoutMs, `send its '${type}' message`)
    } finally {
      child.off('message', onMessage!)
    }
  }

  /** polls `probe` until it resolves true; rejects when the process exits or time runs out */
  async until (probe: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
    let done = false
    const polled = (async () => {
      while (!done) {
        if (await probe().catch(() => false)) return
        await sleep(50)
      }
    })()
    try {
      await this.#race(polled, timeoutMs, what)
    } finally {
      done = true
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it exited */
  async stop (graceMs = 10_000): Promise<ExitStatus & { killed: boolean }> {
    if (this.#exit !== null) return { ...this.#exit, killed: false }
    this.#stopRequested = true
    this.#child.kill('SIGTERM')
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs)
    const status = await this.#exited
    const killed = status.signal === 'SIGKILL'
    clearTimeout(timer)
    return { ...status, killed }
  }

  /**
   * stop() that throws unless the process was still running and exited 0 on its own after our
   * SIGTERM: a service that left early made every number after it meaningless.
   */
  async stopCleanly (graceMs = 10_000): Promise<void> {
    if (this.#exit !== null && !this.#stopRequested) {
      throw this.#failure(`had already exited (code ${this.#exit.code}, signal ${this.#exit.signal}) before the benchmark stopped it`)
    }
    const status = await this.stop(graceMs)
    if (status.killed || status.code !== 0) {
      throw this.#failure(`did not shut down cleanly (code ${status.code}, signal ${status.signal})`)
    }
  }

  async #race<T> (work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const failure = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(this.#failure(`did not ${what} within ${timeoutMs} ms`)), timeoutMs)
      this.#exited.then((s) => reject(this.#failure(`exited (code ${s.code}, signal ${s.signal}) before it could ${what}`)), () => {})
    })
    try {
      return await Promise.race([work, failure])
    } finally {
      clearTimeout(timer)
    }
  }

  #failure (what: string): Error {
    // the output itself is printed once by the ServiceGroup's failure report
    return new Error(`${this.name} ${what}`)
  }

  #keep (chunk: Buffer): void {
    this.#output += chunk.toString('utf8')
    if (this.#output.length > OUTPUT_KEEP * 2) this.#output = this.#output.slice(-OUTPUT_KEEP)
  }
}
