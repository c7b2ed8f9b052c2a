// Embedded mode's audit sink, whose inserts run on a thread (the shared sink contract runs in
// sqlite-audit-sink.test.ts): what happens when the thread cannot do its work — the writes fail,
// and the next one starts a new thread.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readSqliteAuditEvents } from '../../src/audit/audit-event-readers.js'
import { openThreadedSqliteAuditSink, ThreadedSqliteAuditSink } from '../../src/audit/threaded-sqlite-audit-sink.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { batchOfEvents, chainedEvents } from './audit-fixtures.js'

describe('threaded SQLite audit sink', () => {
  it('fails writes while its file cannot be opened, and stores them once it can', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
    const file = join(dir, 'not-yet', 'relaykey.db')
    const sink = new ThreadedSqliteAuditSink(file)
    try {
      await assert.rejects(sink.open(), /directory does not exist|unable to open/)
      const batch = chainedEvents(20)
      await assert.rejects(sink.write(batchOfEvents(batch)), /directory does not exist|unable to open/)
      await mkdir(join(dir, 'not-yet'))
      await sink.write(batchOfEvents(batch))
      const reader = openSqliteDatabase(file)
      const rows = []
      for await (const row of readSqliteAuditEvents(reader)) rows.push(row)
      reader.close()
      assert.deepEqual(rows, batch)
    } finally {
      await sink.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('closes at once while a thread is failing to open its file, failing the write it had', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
    const sink = new ThreadedSqliteAuditSink(join(dir, 'missing', 'relaykey.db'))
    const failed = assert.rejects(sink.write(batchOfEvents(chainedEvents(5))), /directory does not exist|unable to open/)
    await sink.close()
    await failed
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses writes after close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaykey-audit-'))
    const sink = await openThreadedSqliteAuditSink(join(dir, 'relaykey.db'))
    await sink.close()
    await assert.rejects(sink.write(batchOfEvents(chainedEvents(1))), /closed/)
    await rm(dir, { recursive: true, force: true })
  })
})
