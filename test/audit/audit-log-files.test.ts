// The parts under the audit pipeline that keep logged events in order and shipped once: the ring
// queue, the log reader (chunks, torn tails, older releases' spill lines), the log itself (group
// commit, waiters, fsync=always, segments rolling over and going once committed, the size bound)
// and the leftovers of dead processes (claiming, racing claimers).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { appendFileSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { rowsText, type AuditBatch } from '../../src/audit/audit-batch.js'
import { blockHash, GENESIS_BLOCK_HASH } from '../../src/audit/audit-block.js'
import { CopyRowEncoder, eventOfRow, rowSeq } from '../../src/audit/audit-copy-text.js'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { AuditLog, type FsyncPolicy } from '../../src/audit/audit-log.js'
import { EventQueue } from '../../src/audit/event-queue.js'
import { LeftoverLogs } from '../../src/audit/leftover-logs.js'
import { formatLogFileName, ownerAlive, parseLogFileName } from '../../src/audit/log-file-name.js'
import { readLogChunk } from '../../src/audit/log-reader.js'

function chained (writerId: string, seq: number): ChainedAuditEvent {
  return {
    id: randomUUID(), ts: 1_700_000_000_000 + seq, request_id: `req-${seq}`, key_id: 'key_1', customer: 'acme',
    team: null, service: null, environment: 'prod', partner: 'stripe', credential_id: null, method: 'GET',
    path: `/v1/items/${seq}`, status: 200, outcome: 'forwarded', attempts: 1, latency_ms: 3,
    upstream_latency_ms: 2, cost: 1, bytes_in: 0, bytes_out: 120, payment_tx: null, payment_amount: null,
    writer_id: writerId, seq, prev_hash: '0'.repeat(64), hash: 'f'.repeat(64),
  }
}

function range (writerId: string, from: number, to: number): ChainedAuditEvent[] {
  const out = []
  for (let seq = from; seq <= to; seq++) out.push(chained(writerId, seq))
  return out
}

const encoder = new CopyRowEncoder()

/** the event's row as a writer of this release logs it */
function line (e: ChainedAuditEvent): string {
  return encoder.eventRow(e, e.writer_id, e.seq)
}

function tempDir (t: { after (fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-log-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** an owner token of a process that has exited */
function deadOwner (): string {
  const pid = spawnSync('true').pid!
  assert.equal(ownerAlive(`${pid}-1-00`), false)
  return `${pid}-1-00`
}

/** renames every log file in `dir` as if `owner` had written it */
function handTo (dir: string, owner: string): void {
  for (const file of readdirSync(dir)) {
    const name = parseLogFileName(file)
    if (name !== null) renameSync(join(dir, file), join(dir, formatLogFileName({ ...name, owner })))
  }
}

function openLog (dir: string, writerId: string, options: { segmentBytes?: number; maxBytes?: number; fsync?: FsyncPolicy; failed?: number[]; batches?: AuditBatch[] } = {}): AuditLog {
  return new AuditLog({
    dir,
    writerId,
    owner: `${process.pid}-0-${randomUUID().slice(0, 8)}`,
    maxBytes: options.maxBytes ?? 1e9,
    segmentBytes: options.segmentBytes ?? 1e9,
    fsync: options.fsync ?? 'never',
    onBatch: (batch) => options.batches?.push(batch),
    onWriteFailed: (events, firstSeq) => options.failed?.push(firstSeq, events),
  })
}

/** appends events `from..to` of `writer`, each waiter noting its seq in `released`; returns the lines */
function appendRange (log: AuditLog, writer: string, from: number, to: number, released: number[]): string[] {
  const lines = range(writer, from, to).map((e) => {
    const text = line(e)
    log.append(e.seq, e.ts, text, { auditLogged: () => released.push(e.seq) })
    return text
  })
  return lines
}

describe('event queue (ring buffer)', () => {
  it('is FIFO across the wrap and refuses when full instead of overwriting', () => {
    const q = new EventQueue<number>(4)
    for (let i = 1; i <= 4; i++) assert.equal(q.push(i), true)
    assert.equal(q.push(5), false)
    assert.deepEqual(q.take(3), [1, 2, 3])
    for (let i = 5; i <= 7; i++) assert.equal(q.push(i), true)
    assert.equal(q.length, 4)
    assert.deepEqual(q.take(10), [4, 5, 6, 7])
    assert.deepEqual(q.take(10), [])
  })
})

describe('log reader', () => {
  it('reads whole lines in chunks from a byte offset, across block boundaries', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    // long paths push lines across the reader's 256 KiB blocks
    const events = range('w', 1, 3000).map((e) => ({ ...e, path: '/x'.repeat(200 + (e.seq % 50)) }))
    writeFileSync(file, events.map(line).join(''))
    const seen: string[] = []
    let offset = 0
    for (;;) {
      const chunk = await readLogChunk(file, 'w', offset, 700)
      assert.equal(chunk.damaged, 0)
      assert.ok(chunk.rows.length <= 700)
      seen.push(...chunk.rows)
      offset = chunk.nextOffset
      if (chunk.eof) break
    }
    assert.ok(seen.length === events.length && seen.every((row, i) => row === line(events[i]!)), 'every row back, as written')
  })

  it('counts a torn last line (power lost mid-append) as damaged and reads everything before it', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    writeFileSync(file, range('w', 1, 2).map(line).join('') + line(chained('w', 3)).slice(0, 40))
    const chunk = await readLogChunk(file, 'w', 0, 1000)
    assert.deepEqual(chunk.rows.map(rowSeq), [1, 2])
    assert.equal(chunk.damaged, 1)
    assert.equal(chunk.eof, true)
  })

  it('reads only up to the bytes the writer acknowledged', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    const text = range('w', 1, 3).map(line).join('')
    writeFileSync(file, text)
    const end = Buffer.byteLength(range('w', 1, 2).map(line).join(''))
    const chunk = await readLogChunk(file, 'w', 0, 1000, end)
    assert.deepEqual([chunk.rows.map(rowSeq), chunk.damaged, chunk.eof, chunk.nextOffset], [[1, 2], 0, true, end])
  })

  it('reads an older release\'s spill lines, those from before payment_amount with it null', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    const lines = range('w', 1, 3).map(({ payment_amount: _, ...old }) => JSON.stringify({ ...old, payment_tx: '0xabc' }) + '\n')
    writeFileSync(file, lines.join(''))
    const chunk = await readLogChunk(file, 'ignored', 0, 10)
    assert.equal(chunk.damaged, 0)
    // as rows that keep their per-event chain
    assert.deepEqual(chunk.rows.map(eventOfRow).map((e) => [e.writer_id, e.payment_tx, e.payment_amount, e.hash]),
      [['w', '0xabc', null, 'f'.repeat(64)], ['w', '0xabc', null, 'f'.repeat(64)], ['w', '0xabc', null, 'f'.repeat(64)]])
  })
})

describe('audit log', () => {
  it('writes a turn\'s rows together as one block, then releases their waiters in order', async (t) => {
    const dir = tempDir(t)
    const batches: AuditBatch[] = []
    const log = openLog(dir, 'w1', { batches })
    const released: number[] = []
    const lines = appendRange(log, 'w1', 1, 50, released)
    // nothing is released before the write at the end of the turn
    assert.deepEqual(released, [])
    assert.equal(log.writtenSeq, 0)
    await nextTurn()
    assert.deepEqual(released, range('w1', 1, 50).map((e) => e.seq))
    assert.equal(log.writtenSeq, 50)
    const second = appendRange(log, 'w1', 51, 52, released)
    await nextTurn()
    // each turn a block, chained: its hash over exactly its rows
    const rows = lines.join('')
    const first = { writer_id: 'w1', first_seq: 1, last_seq: 50, prev_hash: GENESIS_BLOCK_HASH, hash: blockHash(GENESIS_BLOCK_HASH, rows) }
    const next = { writer_id: 'w1', first_seq: 51, last_seq: 52, prev_hash: first.hash, hash: blockHash(first.hash, second.join('')) }
    assert.deepEqual(batches.map((b) => [b.firstSeq, b.lastSeq, b.events, b.blocks]), [[1, 50, 50, [first]], [51, 52, 2, [next]]])
    assert.ok(rowsText(batches[0]!) === rows, 'memory gets the rows the log wrote')
    const [name] = readdirSync(dir)
    const chunk = await readLogChunk(join(dir, name!), 'w1', 0, 1000)
    assert.deepEqual([chunk.blocks, chunk.damaged], [[first, next], 0])
    assert.ok(chunk.rows.join('') === rows + second.join(''), 'the segment holds the rows, in order')
    await log.close(0)
  })

  it('with fsync=always, releases waiters only once the data is synced', async (t) => {
    const dir = tempDir(t)
    const log = openLog(dir, 'w1', { fsync: 'always' })
    const released: number[] = []
    appendRange(log, 'w1', 1, 10, released)
    log.flush()
    // written, but fdatasync runs on the thread pool: not released in the same tick
    assert.equal(log.writtenSeq, 10)
    assert.deepEqual(released, [])
    for (const deadline = Date.now() + 5_000; released.length < 10 && Date.now() < deadline;) await sleep(1)
    assert.deepEqual(released, range('w1', 1, 10).map((e) => e.seq))
    await log.close(10)
  })

  it('rolls over to a new segment and deletes a segment once all of it is committed', async (t) => {
    const dir = tempDir(t)
    const log = openLog(dir, 'w1', { segmentBytes: 5_000 })
    for (let from = 1; from <= 91; from += 10) {
      appendRange(log, 'w1', from, from + 9, [])
      log.flush()
    }
    const segments = log.segments().map((s) => [s.firstSeq, s.lastSeq])
    assert.ok(segments.length > 3, JSON.stringify(segments))
    // contiguous, in order, nothing missing
    assert.equal(segments[0]![0], 1)
    for (let i = 1; i < segments.length; i++) assert.equal(segments[i]![0], segments[i - 1]![1]! + 1)
    assert.equal(segments.at(-1)![1], 100)
    const third = segments[2]!
    log.committed(third[1]!)
    assert.deepEqual(log.segments().map((s) => s.firstSeq), segments.slice(3).map((s) => s[0]))
    assert.equal(readdirSync(dir).length, segments.length - 3)
    // committing everything keeps the current segment: appends go on there
    log.committed(100)
    assert.equal(log.segmentCount, 1)
    await log.close(100)
    assert.deepEqual(readdirSync(dir), [])
  })

  it('refuses a turn that would pass maxBytes, reports it, and releases its waiters all the same', async (t) => {
    const dir = tempDir(t)
    const failed: number[] = []
    const log = openLog(dir, 'w1', { maxBytes: 10_000, failed })
    const released: number[] = []
    appendRange(log, 'w1', 1, 10, released)
    log.flush()
    appendRange(log, 'w1', 11, 100, released)
    log.flush()
    assert.deepEqual(failed, [11, 90])
    assert.equal(released.length, 100, 'an answer is not held back for a log that cannot take its event')
    assert.ok(log.bytes <= 10_000)
    assert.equal(log.writtenSeq, 10)
    await log.close(0)
  })
})

describe('leftover logs', () => {
  it('claims a dead process\'s files and leaves a live pipeline\'s alone', async (t) => {
    const dir = tempDir(t)
    const live = openLog(dir, 'alive')
    const gone = openLog(dir, 'gone')
    appendRange(live, 'alive', 1, 5, [])
    appendRange(gone, 'gone', 1, 5, [])
    live.flush()
    gone.flush()
    await gone.close(0)
    for (const file of readdirSync(dir)) {
      if (file.includes('.gone.')) renameSync(join(dir, file), join(dir, formatLogFileName({ ...parseLogFileName(file)!, owner: deadOwner() })))
    }
    const next = new LeftoverLogs([dir], `${process.pid}-0-c3`)
    assert.deepEqual(await next.claim(), { files: 1, bytes: gone.bytes, errors: [] })
    assert.equal(next.oldest()!.writerId, 'gone')
    assert.equal((await next.read(next.oldest()!, 100)).rows.length, 5)
    await live.close(0)
  })

  it('gives every leftover file to exactly one of two racing claimers, each writer whole', async (t) => {
    const dir = tempDir(t)
    for (const writer of ['a', 'b', 'c', 'd', 'e', 'f']) {
      // three segments per writer
      const log = openLog(dir, writer, { segmentBytes: 1 })
      for (const from of [1, 101, 201]) {
        appendRange(log, writer, from, from + 99, [])
        log.flush()
      }
      await log.close(0)
    }
    handTo(dir, deadOwner())
    appendFileSync(join(dir, 'unrelated.txt'), 'not a log file')
    const one = new LeftoverLogs([dir], `${process.pid}-0-a1`)
    const two = new LeftoverLogs([dir], `${process.pid}-0-b2`)
    const [a, b] = await Promise.all([one.claim(), two.claim()])
    assert.equal(a.files + b.files, 18)
    const writersOf = async (leftovers: LeftoverLogs): Promise<Map<string, number[]>> => {
      const seen = new Map<string, number[]>()
      while (leftovers.count > 0) {
        const file = leftovers.oldest()!
        for (const e of (await leftovers.read(file, 1000)).rows.map(eventOfRow)) seen.set(e.writer_id, [...(seen.get(e.writer_id) ?? []), e.seq])
        await leftovers.remove(file)
      }
      return seen
    }
    const [x, y] = [await writersOf(one), await writersOf(two)]
    for (const writer of ['a', 'b', 'c', 'd', 'e', 'f']) {
      // whole: one claimer has all three files of the writer, and reads them in seq order
      const seqs = x.get(writer) ?? y.get(writer)
      assert.ok(!(x.has(writer) && y.has(writer)), `writer ${writer} split between claimers`)
      assert.deepEqual(seqs, range(writer, 1, 300).map((e) => e.seq))
    }
    assert.deepEqual(readdirSync(dir), ['unrelated.txt'])
  })
})
