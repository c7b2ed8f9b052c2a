// The hash chains themselves, on plain objects: what gets hashed, and what verifyChains calls an
// altered, missing or broken row, per event (older releases) and per block.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { AuditEvent, ChainedAuditEvent } from '../../src/audit/audit-event.js'
import { canonicalEvent, chainHash, GENESIS_HASH, verifyChains } from '../../src/audit/audit-chain.js'
import { blockHash, GENESIS_BLOCK_HASH, type AuditBlock } from '../../src/audit/audit-block.js'
import { CopyRowEncoder } from '../../src/audit/audit-copy-text.js'
import { auditEvent, chain, chainedEvents } from './audit-fixtures.js'

const FIXED: AuditEvent = {
  id: '0b7e4c1e-8f0a-4d3c-9a51-6a0c2f1d9e11',
  ts: Date.UTC(2026, 0, 2, 3, 4, 5, 678),
  request_id: 'req-1',
  key_id: 'key_1',
  customer: 'cust',
  team: null,
  service: null,
  environment: 'sandbox',
  partner: 'acme',
  credential_id: 'cred_1',
  method: 'POST',
  path: '/résumé',
  status: 200,
  outcome: 'forwarded',
  attempts: 1,
  latency_ms: 12,
  upstream_latency_ms: 9,
  cost: 150,
  bytes_in: 10,
  bytes_out: 20,
  payment_tx: null,
  payment_amount: null,
}

const PAID: AuditEvent = { ...FIXED, payment_tx: '0xabc', payment_amount: '18446744073709551617' }

describe('audit chain hash', () => {
  it('hashes a fixed field order (a JSON array, ts in epoch ms), whatever order the object was built in', () => {
    assert.equal(canonicalEvent(FIXED),
      '["0b7e4c1e-8f0a-4d3c-9a51-6a0c2f1d9e11",1767323045678,"req-1","key_1","cust",null,null,"sandbox","acme",' +
      '"cred_1","POST","/résumé",200,"forwarded",1,12,9,150,10,20,null]')
    const reversed = Object.fromEntries(Object.entries(FIXED).reverse()) as unknown as AuditEvent
    assert.equal(chainHash(GENESIS_HASH, reversed), chainHash(GENESIS_HASH, FIXED))
  })

  // pinned against sha256sum of the same bytes: stored chains depend on this never changing
  it('is SHA-256 hex of prev_hash, a newline and the canonical event', () => {
    assert.equal(GENESIS_HASH, '0'.repeat(64))
    assert.equal(chainHash(GENESIS_HASH, FIXED), 'e7fbe31885169e72bb0199f8e19d66d582e22bb3c3d93f3d557ffb74dd029df7')
  })

  // rows stored before payment_amount existed read back with it NULL: the pinned hash above is
  // theirs, so they verify as they did
  // pinned the same way
  it('leaves payment_amount out while it is null, and appends it once set', () => {
    assert.equal(canonicalEvent(PAID),
      '["0b7e4c1e-8f0a-4d3c-9a51-6a0c2f1d9e11",1767323045678,"req-1","key_1","cust",null,null,"sandbox","acme",' +
      '"cred_1","POST","/résumé",200,"forwarded",1,12,9,150,10,20,"0xabc","18446744073709551617"]')
    assert.equal(chainHash(GENESIS_HASH, PAID), '5071dbaaa7f4c7837497321ccc34490823c600e1154ac912862bf270d9375733')
  })

  it('changes when any field or the previous hash changes', () => {
    const base = chainHash(GENESIS_HASH, FIXED)
    for (const [field, value] of Object.entries({ status: 500, path: '/resume', team: 'x', ts: FIXED.ts + 1, payment_tx: '' })) {
      assert.notEqual(chainHash(GENESIS_HASH, { ...FIXED, [field]: value }), base, field)
    }
    assert.notEqual(chainHash('f'.repeat(64), FIXED), base)
    const paid = chainHash(GENESIS_HASH, PAID)
    for (const amount of [null, '18446744073709551616', '0']) {
      assert.notEqual(chainHash(GENESIS_HASH, { ...PAID, payment_amount: amount }), paid, String(amount))
    }
    assert.notEqual(chainHash(GENESIS_HASH, { ...FIXED, payment_amount: '0' }), base)
  })
})

describe('verifyChains', () => {
  it('passes intact chains of several writers, interleaved, and counts them', async () => {
    const a = chainedEvents(20, 'writer-a')
    const b = chainedEvents(5, 'writer-b')
    const rows = [...a.slice(0, 10), ...b, ...a.slice(10)]
    const result = await verifyChains(rows)
    assert.deepEqual(result, {
      ok: true,
      events: 25,
      problems: [],
      writers: [
        { writer_id: 'writer-a', events: 20, last_seq: 20, problem: null },
        { writer_id: 'writer-b', events: 5, last_seq: 5, problem: null },
      ],
    })
  })

  it('passes an empty trail', async () => {
    assert.deepEqual(await verifyChains([]), { ok: true, writers: [], events: 0, problems: [] })
  })

  it('names an altered row, and only the first problem of its writer', async () => {
    const rows = chainedEvents(10, 'w')
    rows[3] = { ...rows[3], status: 500 }
    rows[7] = { ...rows[7], path: '/elsewhere' }
    const result = await verifyChains(rows)
    assert.equal(result.ok, false)
    assert.deepEqual(result.problems, [{ writer_id: 'w', seq: 4, id: rows[3].id, kind: 'altered' }])
    assert.equal(result.writers[0].events, 10)
  })

  it('names a row whose payment_amount was changed, removed or slipped in as altered', async () => {
    const rows = chainedEvents(30, 'w')
    const paid = rows.filter((r) => r.payment_amount !== null && r.payment_amount !== '0')
    const unpaid = rows.find((r) => r.payment_amount === null)!
    const tamperings: Array<[ChainedAuditEvent, string | null]> = [
      [paid[0], (BigInt(paid[0].payment_amount!) + 1n).toString()],
      [paid[1], null],
      [unpaid, '1'],
    ]
    for (const [victim, amount] of tamperings) {
      const altered = rows.map((r) => (r === victim ? { ...r, payment_amount: amount } : r))
      assert.deepEqual((await verifyChains(altered)).problems, [{ writer_id: 'w', seq: victim.seq, id: victim.id, kind: 'altered' }])
    }
  })

  it('names the first missing seq when rows in the middle are gone', async () => {
    const rows = chainedEvents(10, 'w')
    const kept = [...rows.slice(0, 4), ...rows.slice(6)]
    assert.deepEqual((await verifyChains(kept)).problems, [{ writer_id: 'w', seq: 5, id: rows[6].id, kind: 'missing' }])
  })

  it('names seq 1 missing when a writer\'s first row is gone', async () => {
    const rows = chainedEvents(3, 'w')
    assert.deepEqual((await verifyChains(rows.slice(1))).problems, [{ writer_id: 'w', seq: 1, id: rows[1].id, kind: 'missing' }])
  })

  it('calls a row whose hash recomputes but does not link to its predecessor a broken link', async () => {
    const rows = chainedEvents(6, 'w')
    // a replacement for seq 3 with its own consistent hash: the link from seq 2 no longer holds
    const [forged] = chain('w', [auditEvent(99, rows[2].ts)], 3, 'e'.repeat(64))
    const result = await verifyChains([...rows.slice(0, 2), forged, ...rows.slice(3)])
    assert.deepEqual(result.problems, [{ writer_id: 'w', seq: 3, id: forged.id, kind: 'broken_link' }])
  })

  it('calls a second row with the same seq a broken link', async () => {
    const rows = chainedEvents(4, 'w')
    const [extra] = chain('w', [auditEvent(50, rows[1].ts)], 2, rows[0].hash)
    const result = await verifyChains([rows[0], rows[1], extra, rows[2], rows[3]])
    assert.deepEqual(result.problems, [{ writer_id: 'w', seq: 2, id: extra.id, kind: 'broken_link' }])
  })

  it('keeps checking other writers after one breaks', async () => {
    const a = chainedEvents(5, 'a')
    const b = chainedEvents(5, 'b')
    const altered: ChainedAuditEvent = { ...b[1], cost: 1 }
    const result = await verifyChains([...a.slice(0, 2), ...a.slice(3), b[0], altered, ...b.slice(2)])
    assert.deepEqual(result.problems.map((p) => [p.writer_id, p.kind, p.seq]), [['a', 'missing', 3], ['b', 'altered', 2]])
  })
})

describe('verifyChains on block-chained writers', () => {
  /** a writer of this release: rows with empty hashes, blocks of the given sizes chaining them */
  function blockTrail (writer: string, sizes: number[]): { rows: ChainedAuditEvent[]; blocks: AuditBlock[] } {
    const encoder = new CopyRowEncoder()
    const rows: ChainedAuditEvent[] = []
    const blocks: AuditBlock[] = []
    let prev = GENESIS_BLOCK_HASH
    let seq = 0
    for (const size of sizes) {
      const first = seq + 1
      let text = ''
      for (let i = 0; i < size; i++) {
        const row: ChainedAuditEvent = { ...auditEvent(++seq, Date.UTC(2026, 0, 1) + seq), writer_id: writer, seq, prev_hash: '', hash: '' }
        rows.push(row)
        text += encoder.eventRow(row, writer, seq)
      }
      const hash = blockHash(prev, text)
      blocks.push({ writer_id: writer, first_seq: first, last_seq: seq, prev_hash: prev, hash })
      prev = hash
    }
    return { rows, blocks }
  }

  it('passes an untouched trail, and names a changed row by its block', async () => {
    const { rows, blocks } = blockTrail('w', [1, 4, 2])
    assert.deepEqual(await verifyChains(rows, blocks), { ok: true, writers: [{ writer_id: 'w', events: 7, last_seq: 7, problem: null }], events: 7, problems: [] })
    const changed = rows.map((r) => (r.seq === 4 ? { ...r, bytes_out: r.bytes_out + 1 } : r))
    assert.deepEqual((await verifyChains(changed, blocks)).problems, [{ writer_id: 'w', seq: 2, id: rows[1]!.id, kind: 'altered', block: { first_seq: 2, last_seq: 5 } }])
  })

  it('names a deleted row, rows deleted at the tail, and a writer whose rows are all gone', async () => {
    const { rows, blocks } = blockTrail('w', [3, 3])
    assert.deepEqual((await verifyChains(rows.filter((r) => r.seq !== 2), blocks)).problems, [{ writer_id: 'w', seq: 2, id: rows[2]!.id, kind: 'missing' }])
    assert.deepEqual((await verifyChains(rows.slice(0, 4), blocks)).problems, [{ writer_id: 'w', seq: 5, id: '', kind: 'missing' }])
    assert.deepEqual((await verifyChains([], blocks)).problems, [{ writer_id: 'w', seq: 1, id: '', kind: 'missing' }])
  })

  it('names a slipped-in row, a replaced block and a row no block covers', async () => {
    const { rows, blocks } = blockTrail('w', [2, 2])
    const copy = { ...rows[1]!, id: 'ffffffff-ffff-4fff-bfff-ffffffffffff' }
    assert.deepEqual((await verifyChains([rows[0]!, rows[1]!, copy, rows[2]!, rows[3]!], blocks)).problems, [{ writer_id: 'w', seq: 2, id: copy.id, kind: 'broken_link' }])
    // a second block recomputed over its own rows but not chained to the first
    const other = blockTrail('w', [2, 2])
    const relinked = [blocks[0]!, { ...blocks[1]!, prev_hash: other.blocks[0]!.hash, hash: blockHash(other.blocks[0]!.hash, rows.slice(2).map((r) => new CopyRowEncoder().eventRow(r, 'w', r.seq)).join('')) }]
    assert.deepEqual((await verifyChains(rows, relinked)).problems, [{ writer_id: 'w', seq: 3, id: rows[2]!.id, kind: 'broken_link' }])
    const extra = { ...rows[3]!, seq: 5, id: 'eeeeeeee-eeee-4eee-beee-eeeeeeeeeeee' }
    assert.deepEqual((await verifyChains([...rows, extra], blocks)).problems, [{ writer_id: 'w', seq: 5, id: extra.id, kind: 'broken_link' }])
  })

  it('keeps checking after a lost row: a block changed further on is still named', async () => {
    const { rows, blocks } = blockTrail('w', [2, 3, 2])
    // seq 3 gone (a quarantined event), seq 7 changed
    const trail = rows.filter((r) => r.seq !== 3).map((r) => (r.seq === 7 ? { ...r, cost: r.cost + 1 } : r))
    const result = await verifyChains(trail, blocks)
    assert.deepEqual(result.problems.map((p) => [p.kind, p.seq]), [['missing', 3], ['altered', 6]])
    assert.deepEqual(result.writers[0]!.problem, { writer_id: 'w', seq: 3, id: rows[3]!.id, kind: 'missing' })
  })
})
