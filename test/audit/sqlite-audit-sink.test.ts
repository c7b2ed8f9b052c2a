// The SQLite audit sink: the shared contract on a temp file shared with the control store.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteAuditSink } from '../../src/audit/sqlite-audit-sink.js'
import { readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { runAuditSinkContract } from './audit-sink.contract.js'

runAuditSinkContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
  const file = join(dir, 'relaykey.db')
  const sink = openSqliteAuditSink(file)
  // a second connection, as another process reading the file would have
  const reader = openSqliteDatabase(file)
  return {
    sink,
    rows: () => readSqliteAuditEvents(reader),
    async cleanup () {
      await sink.close()
      reader.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})
