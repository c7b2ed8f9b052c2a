// The body of an audit writer thread (threaded-audit-sink.ts): one sink on a connection of its
// own, fed batches by the worker's event loop. It answers every request with its id; a batch
// that fails comes back as an error message.
import { parentPort } from 'node:worker_threads'
import { AuditContentError, type AuditSink } from './audit-sink.js'
import type { ThreadReply, ThreadRequest } from './threaded-audit-sink.js'

/** serves `open()`'s sink on this thread; a store that cannot be opened fails the thread */
export function serveAuditSink (open: () => AuditSink): void {
  const port = parentPort!
  const sink = open()
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
}
