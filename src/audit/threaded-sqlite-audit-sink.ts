// Embedded mode's audit sink: the SQLite inserts run on a thread of the worker's own, so a
// batch (milliseconds of inserts per 1,000 events, longer while another process holds SQLite's
// write lock) never stalls the requests on the event loop. The event loop pays for copying the
// batch to the thread (one string of COPY text rows and a few blocks); the thread parses the
// rows and pays for the rest.
//
//   write(batch) ──postMessage──► thread: SqliteAuditSink.write ──reply {id, error}──► settle
//
// A thread that dies (its file unusable, a crash) fails every write in flight, which the
// pipeline reads back from its log and writes again; the next write starts a new thread.
import { Worker } from 'node:worker_threads'
import type { AuditBatch } from './audit-batch.js'
import { AuditContentError, type AuditSink } from './audit-sink.js'

export type ThreadRequest =
  | { type: 'write'; id: number; batch: AuditBatch }
  | { type: 'close' }

/** id 0 says the thread opened its file and is ready */
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

const THREAD_SCRIPT = new URL('./sqlite-audit-thread.js', import.meta.url)

/** longer than SQLite's busy_timeout (5 s), so a write waiting for the lock may still finish */
const CLOSE_DEADLINE_MS = 7_000

export class ThreadedSqliteAuditSink implements AuditSink {
  readonly #file: string
  #thread: Worker | null = null
  /** resolves once the current thread has opened the file; rejects if it could not */
  #ready: Promise<void> | null = null
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #closed = false

  constructor (file: string) {
    this.#file = file
  }

  /** starts the thread and waits until it has opened the file (fails as opening it would) */
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
      thread.postMessage({ type: 'write', id, batch } satisfies ThreadRequest)
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
    const thread = new Worker(THREAD_SCRIPT, { workerData: { file: this.#file } })
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

/** the embedded file's audit sink, its thread started and the file opened */
export async function openThreadedSqliteAuditSink (file: string): Promise<ThreadedSqliteAuditSink> {
  const sink = new ThreadedSqliteAuditSink(file)
  await sink.open()
  return sink
}
