// The SQLite audit sinks: the shared contract on a temp file shared with the control store, for
// the sink on the caller's thread and for embedded mode's, which inserts on a writer thread.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AuditSink } from '../../src/audit/audit-sink.js'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { openThreadedSqliteAuditSink } from '../../src/audit/threaded-sqlite-audit-sink.js'
import { readSqliteAuditBlocks, readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { SqliteAuditQuery } from '../../src/audit/sqlite-audit-query.js'
import { runAuditSinkContract, type OpenedSink } from './audit-sink.contract.js'

async function onTempFile (open: (file: string) => AuditSink | Promise<AuditSink>): Promise<OpenedSink> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
  const file = join(dir, 'relaykey.db')
  const sink = await open(file)
  // a second connection, as another process reading the file would have
  const reader = openSqliteDatabase(file)
  return {
    sink,
    rows: () => readSqliteAuditEvents(reader),
    blocks: async () => readSqliteAuditBlocks(reader),
    usage: async (...args) => await new SqliteAuditQuery(reader).usage(...args),
    async cleanup () {
      await sink.close()
      reader.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

runAuditSinkContract('sqlite', () => onTempFile(openSqliteAuditSink))
runAuditSinkContract('sqlite, on a writer thread', () => onTempFile(openThreadedSqliteAuditSink))
