// The behaviour every AuditSink must show, run against each implementation by its own test
// file. One sink serves all cases, so every case writes under its own writer ids and only
// looks at those.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { AuditContentError, type AuditSink } from '../../src/audit/audit-sink.js'
import { verifyChains } from '../../src/audit/audit-chain.js'
import type { AuditQuery } from '../../src/audit/audit-query.js'
import { auditEvent, AWKWARD_PATHS, batchOfEvents, batchWithCells, chain, chainedEvents, PAYMENT_AMOUNTS, usageCountedFrom } from './audit-fixtures.js'
import { batchOfRows } from '../../src/audit/audit-batch.js'
import { blockHash, GENESIS_BLOCK_HASH, type AuditBlock } from '../../src/audit/audit-block.js'
import { CopyRowEncoder } from '../../src/audit/audit-copy-text.js'

export interface OpenedSink {
  sink: AuditSink
  /** every stored event, in chain order (writer_id, seq) */
  rows(): AsyncIterable<ChainedAuditEvent>
  /** every stored block */
  blocks(): Promise<AuditBlock[]>
  /** GET /admin/usage's numbers from the store's rollups */
  usage: AuditQuery['usage']
  cleanup(): Promise<void>
}

export function runAuditSinkContract (name: string, open: () => Promise<OpenedSink>): void {
  describe(`audit sink contract: ${name}`, () => {
    let opened: OpenedSink
    before(async () => { opened = await open() })
    after(() => opened.cleanup())

    async function stored (...writers: string[]): Promise<ChainedAuditEvent[]> {
      const wanted = new Set(writers)
      const rows: ChainedAuditEvent[] = []
      for await (const row of opened.rows()) if (wanted.has(row.writer_id)) rows.push(row)
      return rows
    }

    async function count (): Promise<number> {
      let n = 0
      for await (const _ of opened.rows()) n++
      return n
    }

    it('stores a batch and reads every field back exactly: nulls, unicode, escaped characters, payment amounts', async () => {
      const batch = chainedEvents(60)
      assert.ok(batch.some((e) => e.key_id === null && e.upstream_latency_ms === null && e.payment_tx === null))
      for (const path of AWKWARD_PATHS) assert.ok(batch.some((e) => e.path === path), path)
      // x402 atomic units past 2^53 must come back as the same decimal strings
      for (const amount of PAYMENT_AMOUNTS) assert.ok(batch.some((e) => e.payment_tx !== null && e.payment_amount === amount), amount)
      await opened.sink.write(batchOfEvents(batch))
      assert.deepEqual(await stored(batch[0].writer_id), batch)
    })

    it('skips events it already has: writing the same batch again adds nothing', async () => {
      const batch = chainedEvents(50)
      await opened.sink.write(batchOfEvents(batch))
      await opened.sink.write(batchOfEvents(batch))
      assert.deepEqual(await stored(batch[0].writer_id), batch)
    })

    it('stores the new events of a batch that partly overlaps what is stored', async () => {
      const batch = chainedEvents(40)
      await opened.sink.write(batchOfEvents(batch.slice(0, 25)))
      await opened.sink.write(batchOfEvents(batch.slice(10)))
      assert.deepEqual(await stored(batch[0].writer_id), batch)
    })

    it('adds each event it stores to the usage rollup once: replays and overlaps add only what is new', async () => {
      const keyId = `key_${randomUUID()}`
      const events = chainedEvents(40).map((e) => ({ ...e, key_id: keyId }))
      // from memory, with the cells counted at record time; then read back from a log, without
      await opened.sink.write(batchWithCells(events.slice(0, 25)))
      await opened.sink.write(batchOfEvents(events.slice(10)))
      await opened.sink.write(batchWithCells(events))
      const usage = await opened.usage({ key_id: keyId, customer: null, partner: null }, new Date(0), new Date('3000-01-01'))
      assert.deepEqual(usage, usageCountedFrom(events))
      assert.equal(usage.requests, 40)
      assert.ok(usage.paid.requests > 0 && usage.cost > 0)
    })

    it('adds the cells of batch after batch from memory, whatever characters a customer or partner name holds', async () => {
      const customer = `cust "quoted" \\ back\tslash ü 🙂 ${randomUUID()}`
      const partner = 'p\'q{r},s[t]'
      const events = chainedEvents(60).map((e) => ({ ...e, key_id: e.key_id === null ? null : 'key_awkward', customer, partner }))
      for (let i = 0; i < events.length; i += 20) await opened.sink.write(batchWithCells(events.slice(i, i + 20)))
      const usage = await opened.usage({ key_id: null, customer, partner: null }, new Date(0), new Date('3000-01-01'))
      assert.deepEqual(usage, usageCountedFrom(events))
      assert.equal(usage.requests, 60)
      const byPartner = await opened.usage({ key_id: null, customer: null, partner }, new Date(0), new Date('3000-01-01'))
      assert.equal(byPartner.requests, 60)
    })

    it('accepts an empty batch and stores nothing', async () => {
      const before = await count()
      await opened.sink.write(batchOfEvents([]))
      assert.equal(await count(), before)
    })

    it('stores a batch of 10,000 events', async () => {
      const batch = chainedEvents(10_000)
      await opened.sink.write(batchOfEvents(batch))
      assert.deepEqual(await stored(batch[0].writer_id), batch)
    })

    it('reads each writer back in seq order whatever order the batches came in', async () => {
      const a = chainedEvents(30)
      const b = chainedEvents(30)
      // later seqs first, writers interleaved within a batch
      await opened.sink.write(batchOfEvents([...a.slice(20), ...b.slice(15)].reverse()))
      await opened.sink.write(batchOfEvents([...b.slice(0, 15), ...a.slice(0, 20)]))
      const rows = await stored(a[0].writer_id, b[0].writer_id)
      const [first, second] = a[0].writer_id < b[0].writer_id ? [a, b] : [b, a]
      assert.deepEqual(rows, [...first, ...second])
      const result = await verifyChains(rows)
      assert.equal(result.ok, true)
    })

    it('rejects a batch with an unstorable event and stores none of it, then keeps working', async () => {
      const writer = randomUUID()
      const events = [auditEvent(1, Date.now()), auditEvent(2, Date.now()), auditEvent(3, Date.now())]
      // what a corrupted log file could hold
      events[2] = { ...events[2], status: 'teapot' as unknown as number }
      await assert.rejects(opened.sink.write(batchOfEvents(chain(writer, events))), AuditContentError)
      assert.deepEqual(await stored(writer), [])
      // a row that is not one: too few fields
      const damaged = batchOfEvents(chain(writer, events.slice(0, 2)))
      await assert.rejects(opened.sink.write({ ...damaged, rows: Buffer.concat([damaged.rows, Buffer.from('not\ta\trow\n')]), events: 3 }), AuditContentError)
      assert.deepEqual(await stored(writer), [])
      // an amount that is not a decimal string of atomic units: refused, never skipped quietly
      const unpriced = chain(writer, [events[0], { ...events[1], payment_tx: '0xabc', payment_amount: 'twelve' }])
      await assert.rejects(opened.sink.write(batchOfEvents(unpriced)), AuditContentError)
      assert.deepEqual(await stored(writer), [])
      const good = chainedEvents(5, writer)
      await opened.sink.write(batchOfEvents(good))
      assert.deepEqual(await stored(writer), good)
    })

    it('stores a batch\'s blocks with its rows, skips blocks it has, and the rows verify block by block', async () => {
      const writer = randomUUID()
      const encoder = new CopyRowEncoder()
      const rows = Array.from({ length: 7 }, (_, i) => encoder.eventRow(auditEvent(i, Date.now() - 7 + i), writer, i + 1))
      const first: AuditBlock = { writer_id: writer, first_seq: 1, last_seq: 3, prev_hash: GENESIS_BLOCK_HASH, hash: blockHash(GENESIS_BLOCK_HASH, rows.slice(0, 3).join('')) }
      const second: AuditBlock = { writer_id: writer, first_seq: 4, last_seq: 7, prev_hash: first.hash, hash: blockHash(first.hash, rows.slice(3).join('')) }
      await opened.sink.write(batchOfRows(rows.slice(0, 5), [first]))
      // a replay overlapping what is stored, its block line read again with it
      await opened.sink.write(batchOfRows(rows.slice(3), [first, second]))
      // blocks alone, as when a block line comes in the chunk after its rows
      await opened.sink.write(batchOfRows([], [second]))
      const events = await stored(writer)
      assert.deepEqual(events.map((e) => [e.seq, e.prev_hash, e.hash]), rows.map((_, i) => [i + 1, '', '']))
      const blocks = (await opened.blocks()).filter((b) => b.writer_id === writer)
      assert.deepEqual(blocks, [first, second])
      const result = await verifyChains(events, blocks)
      assert.deepEqual([result.ok, result.events], [true, 7])
    })
  })
}
