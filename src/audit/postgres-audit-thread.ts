// The distributed-mode audit writer thread: one PostgresAuditSink (its own connection, COPY and
// the usage upserts) off the worker's event loop.
import { workerData } from 'node:worker_threads'
import { serveAuditSink } from './audit-thread.js'
import { openPostgresAuditSink } from './postgres-audit-sink.js'

serveAuditSink(() => openPostgresAuditSink((workerData as { databaseUrl: string }).databaseUrl))
