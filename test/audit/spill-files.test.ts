// The parts under the audit pipeline that keep spilled events in order and replayed once: the
// ring queue, the spill file reader (chunks, torn tails) and the spill directory (which file a
// batch goes to, the size limit, claiming a dead process's files, racing claimers).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { appendFileSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { EventQueue } from '../../src/audit/event-queue.js'
import { SpillDir } from '../../src/audit/spill-dir.js'
import { formatSpillName, ownerAlive, parseSpillName } from '../../src/audit/spill-name.js'
import { readSpillChunk } from '../../src/audit/spill-reader.js'

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

function tempDir (t: { after (fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-spill-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** an owner token of a process that has exited */
function deadOwner (): string {
  const pid = spawnSync('true').pid!
  assert.equal(ownerAlive(`${pid}-1-00`), false)
  return `${pid}-1-00`
}

/** renames every spill file in `dir` as if `owner` had written it */
function handTo (dir: string, owner: string): void {
  for (const file of readdirSync(dir)) {
    const name = parseSpillName(file)
    if (name !== null) renameSync(join(dir, file), join(dir, formatSpillName({ ...name, owner })))
  }
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

describe('spill reader', () => {
  it('reads whole lines in chunks from a byte offset, across block boundaries', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    // long paths push lines across the reader's 256 KiB blocks
    const events = range('w', 1, 3000).map((e) => ({ ...e, path: '/x'.repeat(200 + (e.seq % 50)) }))
    writeFileSync(file, events.map((e) => JSON.stringify(e) + '\n').join(''))
    const seen: number[] = []
    let offset = 0
    for (;;) {
      const chunk = await readSpillChunk(file, offset, 700)
      assert.equal(chunk.damaged, 0)
      seen.push(...chunk.events.map((e) => e.seq))
      offset = chunk.nextOffset
      if (chunk.eof) break
    }
    assert.deepEqual(seen, events.map((e) => e.seq))
  })

  it('counts a torn last line (a crash mid-append) as damaged and reads everything before it', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    const line = JSON.stringify(chained('w', 3))
    writeFileSync(file, range('w', 1, 2).map((e) => JSON.stringify(e) + '\n').join('') + line.slice(0, 40))
    const chunk = await readSpillChunk(file, 0, 1000)
    assert.deepEqual(chunk.events.map((e) => e.seq), [1, 2])
    assert.equal(chunk.damaged, 1)
    assert.equal(chunk.eof, true)
  })

  it('reads lines spilled before payment_amount existed with it null', async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'f.ndjson')
    const lines = range('w', 1, 3).map(({ payment_amount: _, ...old }) => JSON.stringify({ ...old, payment_tx: '0xabc' }) + '\n')
    writeFileSync(file, lines.join(''))
    const chunk = await readSpillChunk(file, 0, 10)
    assert.equal(chunk.damaged, 0)
    assert.deepEqual(chunk.events.map((e) => [e.payment_tx, e.payment_amount]), [['0xabc', null], ['0xabc', null], ['0xabc', null]])
  })
})

describe('spill directory', () => {
  it('appends a batch to the current file only when it continues its seq range', async (t) => {
    const dir = tempDir(t)
    const spill = new SpillDir({ dir, writerId: 'w1', maxBytes: 1e9 })
    assert.equal((await spill.append(range('w1', 1, 10))).ok, true)
    assert.equal(spill.appendSync(range('w1', 11, 20)).ok, true)
    assert.equal(spill.fileCount, 1)
    // a batch that was in flight while later ones were spilled: its own file, sorted first
    assert.equal((await spill.append(range('w1', 31, 40))).ok, true)
    assert.equal((await spill.append(range('w1', 21, 30))).ok, true)
    assert.equal(spill.fileCount, 3)
    const order: number[] = []
    while (spill.fileCount > 0) {
      const file = spill.oldest()!
      const chunk = await spill.read(file, 1000)
      order.push(...chunk.events.map((e) => e.seq))
      await spill.remove(file)
    }
    assert.deepEqual(order, range('w1', 1, 40).map((e) => e.seq))
    assert.equal(spill.bytes, 0)
    assert.deepEqual(readdirSync(dir), [])
  })

  it('refuses a batch that would pass maxSpillBytes', async (t) => {
    const dir = tempDir(t)
    const spill = new SpillDir({ dir, writerId: 'w1', maxBytes: 20_000 })
    assert.equal((await spill.append(range('w1', 1, 10))).ok, true)
    const result = await spill.append(range('w1', 11, 100))
    assert.deepEqual(result, { ok: false, reason: 'full', error: null })
    assert.ok(spill.bytes <= 20_000)
  })

  it('claims a dead process\'s files and leaves a live pipeline\'s alone', async (t) => {
    const dir = tempDir(t)
    const live = new SpillDir({ dir, writerId: 'alive', maxBytes: 1e9 })
    const gone = new SpillDir({ dir, writerId: 'gone', maxBytes: 1e9 })
    await live.append(range('alive', 1, 5))
    await gone.append(range('gone', 1, 5))
    gone.sealAll()
    for (const file of readdirSync(dir)) {
      if (file.includes('.gone.')) renameSync(join(dir, file), join(dir, formatSpillName({ ...parseSpillName(file)!, owner: deadOwner() })))
    }
    const next = new SpillDir({ dir, writerId: 'next', maxBytes: 1e9 })
    assert.deepEqual(await next.claimLeftovers(), { files: 1, bytes: gone.bytes, errors: [] })
    assert.equal(next.oldest()!.writerId, 'gone')
    assert.equal((await next.read(next.oldest()!, 100)).events.length, 5)
    live.sealAll()
  })

  it('gives every leftover file to exactly one of two racing claimers, each writer whole', async (t) => {
    const dir = tempDir(t)
    for (const writer of ['a', 'b', 'c', 'd', 'e', 'f']) {
      const spill = new SpillDir({ dir, writerId: writer, maxBytes: 1e9 })
      // three files per writer: each batch starts past the last one's range
      for (const from of [1, 101, 201]) await spill.append(range(writer, from, from + 49))
      spill.sealAll()
    }
    handTo(dir, deadOwner())
    appendFileSync(join(dir, 'unrelated.txt'), 'not a spill file')
    const one = new SpillDir({ dir, writerId: 'one', maxBytes: 1e9 })
    const two = new SpillDir({ dir, writerId: 'two', maxBytes: 1e9 })
    const [a, b] = await Promise.all([one.claimLeftovers(), two.claimLeftovers()])
    assert.equal(a.files + b.files, 18)
    const writersOf = async (spill: SpillDir): Promise<Map<string, number[]>> => {
      const seen = new Map<string, number[]>()
      while (spill.fileCount > 0) {
        const file = spill.oldest()!
        for (const e of (await spill.read(file, 1000)).events) seen.set(e.writer_id, [...(seen.get(e.writer_id) ?? []), e.seq])
        await spill.remove(file)
      }
      return seen
    }
    const [x, y] = [await writersOf(one), await writersOf(two)]
    for (const writer of ['a', 'b', 'c', 'd', 'e', 'f']) {
      // whole: one claimer has all three files of the writer, and reads them in seq order
      const seqs = x.get(writer) ?? y.get(writer)
      assert.ok(!(x.has(writer) && y.has(writer)), `writer ${writer} split between claimers`)
      assert.deepEqual(seqs, [...range(writer, 1, 50), ...range(writer, 101, 150), ...range(writer, 201, 250)].map((e) => e.seq))
    }
    assert.deepEqual(readdirSync(dir), ['unrelated.txt'])
  })
})
