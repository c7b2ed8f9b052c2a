// Who checkpoints the embedded file's WAL, and how often: the audit writer, every
// AUDIT_WRITER_CHECKPOINT_PAGES pages rather than SQLite's 1,000 (a checkpoint copies every
// page the batches dirtied back into the file, so a rarer one copies a hot page once), and no
// other connection before the WAL is twice that — those run on the workers' event loops.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { openThreadedSqliteAuditSink, type ThreadedSqliteAuditSink } from '../../src/audit/threaded-sqlite-audit-sink.js'
import { AUDIT_WRITER_CHECKPOINT_PAGES, openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import { auditEvent, batchOfEvents, chain } from './audit-fixtures.js'

const PAGE = 4096

describe('WAL checkpoints of the embedded file', () => {
  let dir: string
  let file: string
  let sink: ThreadedSqliteAuditSink
  let other: Database.Database

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaykey-checkpoints-'))
    file = join(dir, 'relaykey.db')
    sink = await openThreadedSqliteAuditSink(file)
    other = openSqliteDatabase(file) // as the control store or the limits store opens it
  })

  after(async () => {
    await sink.close()
    other.close()
    await rm(dir, { recursive: true, force: true })
  })

  const walPages = (): number => statSync(`${file}-wal`).size / PAGE

  it('lets the WAL grow past SQLite\'s 1,000 pages, and the writer checkpoints it near its own bound', async () => {
    const writer = 'checkpoint-test'
    let seq = 1
    let prev: string | undefined
    const write = async (): Promise<void> => {
      const events = chain(writer, Array.from({ length: 1000 }, (_, i) => auditEvent(seq + i, Date.now())), seq, prev)
      await sink.write(batchOfEvents(events))
      seq += events.length
      prev = events.at(-1)!.hash
    }
    // batches of 1,000 until the WAL has passed the writer's bound (capped: ~40 MiB of WAL)
    for (let batch = 0; batch < 400 && walPages() <= AUDIT_WRITER_CHECKPOINT_PAGES; batch++) {
      await write()
      // a commit on another connection, as the limits store makes on every decision: it must
      // not be the one that checkpoints
      other.prepare('INSERT INTO payment_claims (hash, expires_at) VALUES (?, ?)').run(Buffer.from(String(seq)), new Date().toISOString())
      if (batch === 10) assert.ok(walPages() > 1_500, `WAL at ${Math.round(walPages())} pages after 11 batches: checkpointed at SQLite's default`)
    }
    const grown = walPages()
    assert.ok(grown > AUDIT_WRITER_CHECKPOINT_PAGES && grown < AUDIT_WRITER_CHECKPOINT_PAGES * 1.5, `WAL file at ${Math.round(grown)} pages`)
    // the writer's next commit finds the WAL past its bound and checkpoints; a checkpoint resets
    // the WAL to its start (the file keeps its size), so the batch after that adds no pages
    await write()
    const checkpointed = walPages()
    await write()
    assert.ok(walPages() <= checkpointed + 1, `the writer checkpointed instead of growing the WAL further (${Math.round(checkpointed)} → ${Math.round(walPages())} pages)`)
  })
})
