// The body of the embedded-mode audit writer thread (see threaded-sqlite-audit-sink.ts): one
// SqliteAuditSink on a connection of its own, fed batches by the worker's event loop. It
// answers every request with its id; a batch that fails comes back as an error message.
import { parentPort, workerData } from 'node:worker_threads'
import { openSqliteAuditSink } from './sqlite-audit-sink.js'
import { AuditContentError } from './audit-sink.js'
import type { ThreadReply, ThreadRequest } from './threaded-sqlite-audit-sink.js'

const port = parentPort!
// opening applies the schema if needed: a file this release cannot use fails here, and the
// owner sees it as the thread's error before any batch is sent
const sink = openSqliteAuditSink((workerData as { file: string }).file)
port.postMessage({ id: 0, error: null } satisfies ThreadReply)

port.on('message', (request: ThreadRequest) => {
  if (request.type === 'close') {
    void sink.close().catch(() => {}).finally(() => port.close())
    return
  }
  sink.write(request.batch).then(
    () => port.postMessage({ id: request.id, error: null } satisfies ThreadReply),
    (err: unknown) => port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err), content: err instanceof AuditContentError } satisfies ThreadReply),
  )
})
