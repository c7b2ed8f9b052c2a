// An audit sink on a thread of the worker's own: the SQLite inserts (embedded mode) or the
// PostgreSQL driver's COPY (distributed mode) run there, so a batch (milliseconds of inserts per
// 1,000 events, longer while another process holds SQLite's write lock; the driver's protocol
// work) never stalls the requests on the event loop, nor spends its CPU. The event loop pays
// for copying the batch to the thread (the rows' bytes, a few blocks, and for PostgreSQL the
// usage cells as COPY rows); the thread pays for the rest.
//
//   write(batch) ──postMessage──► thread: the store's sink.write ──reply {id, error}──► settle
//
// A thread that dies (its file unusable, a crash) fails every write in flight, which the
// pipeline reads back from its log and writes again; the next write starts a new thread.
import { Worker } from 'node:worker_threads'
import type { AuditBatch } from './audit-batch.js'
import { AuditContentError, type AuditSink } from './audit-sink.js'

export type ThreadRequest =
  | { type: 'write'; id: number; batch: AuditBatch }
  | { type: 'close' }

/** id 0 says the thread opened its store and is ready */
export interface ThreadReply {
  id: number
  /** null when the batch is stored */
  error: string | null
  /** the batch was refused for its content (AuditContentError) */
  content?: boolean
}

interface Pending {
  resolve: () => void
  reject: (err: Error) => void
}

/** longer than SQLite's busy_timeout (5 s) and the PostgreSQL sink's write deadline, so a write may still finish */
const CLOSE_DEADLINE_MS = 12_000

export interface ThreadedSinkOptions {
  /** the thread's script: it builds the store's sink from `workerData` and serves it (audit-thread.ts) */
  script: URL
  workerData: unknown
  /** send each batch's usage cells along as COPY rows (the PostgreSQL sink upserts them) */
  sendCells: boolean
}

export class ThreadedAuditSink implements AuditSink {
  readonly #options: ThreadedSinkOptions
  #thread: Worker | null = null
  /** resolves once the current thread has opened the file; rejects if it could not */
  #ready: Promise<void> | null = null
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #closed = false

  constructor (options: ThreadedSinkOptions) {
    this.#options = options
  }

  /** starts the thread and waits until it has opened its store (fails as opening it would) */
  async open (): Promise<void> {
    await this.#start()
  }

  async write (batch: AuditBatch): Promise<void> {
    if (batch.events === 0 && batch.blocks.length === 0) return
    if (this.#closed) throw new Error('the audit sink is closed')
    await this.#start()
    // closed, or the thread lost, while it started
    const thread = this.#thread
    if (this.#closed || thread === null) throw new Error('the audit sink is closed')
    const id = this.#nextId++
    const stored = new Promise<void>((resolve, reject) => { this.#pending.set(id, { resolve, reject }) })
    try {
      // the cells are a class (they would arrive empty): as COPY rows, or left for the thread
      // to count from the rows
      const { cells, ...rest } = batch
      const crossing: AuditBatch = this.#options.sendCells && cells !== undefined ? { ...rest, cellRows: cells.copyRows() } : rest
      thread.postMessage({ type: 'write', id, batch: crossing } satisfies ThreadRequest)
    } catch (err) {
      this.#pending.delete(id) // the batch could not be copied (never the case for events)
      throw err
    }
    return await stored
  }

  /**
   * Lets the thread finish what it was sent, then stop; after `deadlineMs` (a write stuck on
   * another process's lock) it is stopped outright, failing what it had not answered.
   */
  async close (deadlineMs = CLOSE_DEADLINE_MS): Promise<void> {
    this.#closed = true
    const thread = this.#thread
    if (thread === null) return
    // 'exit' comes whatever happened ('error' may come first): wait for it, never reject
    const exited = new Promise<void>((resolve) => { thread.once('exit', () => resolve()) })
    thread.postMessage({ type: 'close' } satisfies ThreadRequest)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(resolve, deadlineMs, 'late') })
    if (await Promise.race([exited, late]) === 'late') {
      await thread.terminate()
      await exited
    }
    clearTimeout(timer)
  }

  #start (): Promise<void> {
    if (this.#ready !== null) return this.#ready
    const thread = new Worker(this.#options.script, { workerData: this.#options.workerData })
    this.#thread = thread
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#pending.set(0, { resolve, reject })
    })
    thread.on('message', (reply: ThreadReply) => this.#settle(reply))
    thread.on('error', (err) => this.#lost(thread, err))
    thread.on('exit', (code) => this.#lost(thread, new Error(`the audit writer thread exited (code ${code})`)))
    // a failed start is reported to whoever waits for it, then forgotten, so a later write retries
    this.#ready.catch(() => {})
    return this.#ready
  }

  #settle (reply: ThreadReply): void {
    const pending = this.#pending.get(reply.id)
    if (pending === undefined) return
    this.#pending.delete(reply.id)
    if (reply.error === null) pending.resolve()
    else pending.reject(reply.content === true ? new AuditContentError(reply.error) : new Error(reply.error))
  }

  /** the thread is gone: everything it had not answered failed, and the next write starts anew */
  #lost (thread: Worker, err: Error): void {
    if (this.#thread !== thread) return
    this.#thread = null
    this.#ready = null
    for (const pending of this.#pending.values()) pending.reject(err)
    this.#pending.clear()
  }
}

/** the embedded file's audit sink; its thread starts at open() or the first write */
export function threadedSqliteAuditSink (file: string): ThreadedAuditSink {
  return new ThreadedAuditSink({ script: new URL('./sqlite-audit-thread.js', import.meta.url), workerData: { file }, sendCells: false })
}

/** the embedded file's audit sink, its thread started and the file opened */
export async function openThreadedSqliteAuditSink (file: string): Promise<ThreadedAuditSink> {
  const sink = threadedSqliteAuditSink(file)
  await sink.open()
  return sink
}

/**
 * PostgreSQL's audit sink on a thread (its own single connection to `databaseUrl`), started. The
 * database need not be up: the sink connects at its first write, as openPostgresAuditSink does.
 */
export async function openThreadedPostgresAuditSink (databaseUrl: string): Promise<ThreadedAuditSink> {
  const sink = new ThreadedAuditSink({ script: new URL('./postgres-audit-thread.js', import.meta.url), workerData: { databaseUrl }, sendCells: true })
  await sink.open()
  return sink
}
