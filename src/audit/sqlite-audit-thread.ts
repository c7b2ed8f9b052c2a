// The embedded-mode audit writer thread: one SqliteAuditSink on a connection of its own.
// Opening applies the schema if needed: a file this release cannot use fails here, and the
// owner sees it as the thread's error before any batch is sent.
import { workerData } from 'node:worker_threads'
import { serveAuditSink } from './audit-thread.js'
import { openSqliteAuditSink } from './sqlite-audit-sink.js'

serveAuditSink(() => openSqliteAuditSink((workerData as { file: string }).file))
