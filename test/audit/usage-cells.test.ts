// Usage cells sum events per (hour, key, customer, partner, outcome), however the events are
// spread over sets and merged, and whatever the fields hold.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { UsageCells, type UsageCell } from '../../src/audit/usage-cells.js'
import type { AuditEvent } from '../../src/audit/audit-event.js'

const HOUR = 3_600_000

function event (fields: Partial<AuditEvent>): AuditEvent {
  return {
    ts: Date.UTC(2026, 11, 6, 10), key_id: 'key_1', customer: null, partner: 'acme', outcome: 'forwarded',
    attempts: 1, status: 200, cost: 1, bytes_in: 0, bytes_out: 10, payment_tx: null, payment_amount: null, ...fields,
  } as unknown as AuditEvent
}

/** the sums a plain count gives, by the cell's fields */
function reference (events: AuditEvent[]): Map<string, Omit<UsageCell, 'hour' | 'key_id' | 'customer' | 'partner' | 'outcome'>> {
  const out = new Map<string, any>()
  for (const e of events) {
    const name = JSON.stringify([Math.floor(e.ts / HOUR) * HOUR, e.key_id ?? '', e.customer ?? '', e.partner, e.outcome])
    const c = out.get(name) ?? { requests: 0, retried: 0, server_errors: 0, cost: 0, bytes_in: 0, bytes_out: 0, paid: 0, paid_amount: 0n }
    c.requests++
    c.retried += Math.max(0, e.attempts - 1)
    if (e.status >= 500) c.server_errors++
    c.cost += e.cost
    c.bytes_in += e.bytes_in
    c.bytes_out += e.bytes_out
    if (e.payment_tx !== null) {
      c.paid++
      c.paid_amount += BigInt(e.payment_amount!)
    }
    out.set(name, c)
  }
  return out
}

function sums (cells: UsageCells): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const c of cells.values()) {
    const { hour, key_id: keyId, customer, partner, outcome, ...rest } = c
    const name = JSON.stringify([hour, keyId, customer, partner, outcome])
    assert.equal(out.has(name), false, `one cell per fields: ${name} twice`)
    out.set(name, rest)
  }
  return out
}

describe('usage cells', () => {
  it('sum random events exactly, added in several sets and merged', () => {
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    }
    // one key sends to many partner names (more cells than a key's short list holds), fields
    // hold COPY's delimiters and escapes, events cross an hour
    const partners = ['acme', 'globex', 'a\tb', 'back\\slash', 'line\nbreak', ...Array.from({ length: 20 }, (_, i) => `p${i}`)]
    const events: AuditEvent[] = []
    for (let i = 0; i < 5_000; i++) {
      const paid = random(10) === 0
      events.push(event({
        ts: Date.UTC(2026, 11, 6, 10) + random(2 * HOUR),
        key_id: random(5) === 0 ? null : `key_${random(4)}`,
        customer: random(3) === 0 ? null : ['c1', 'c\t2'][random(2)]!,
        partner: partners[random(partners.length)]!,
        outcome: ['forwarded', 'refused', 'upstream_error'][random(3)]!,
        attempts: 1 + random(3),
        status: [200, 429, 502][random(3)]!,
        cost: random(4),
        bytes_in: random(1000),
        bytes_out: random(5000),
        payment_tx: paid ? `0x${i}` : null,
        payment_amount: paid ? String(1 + random(1_000_000)) : null,
      } as Partial<AuditEvent>))
    }
    const total = new UsageCells()
    for (let start = 0; start < events.length; start += 37) {
      const turn = new UsageCells()
      for (const e of events.slice(start, start + 37)) turn.add(e)
      total.merge(turn)
    }
    const expected = reference(events)
    assert.deepEqual(sums(total), expected)
    assert.equal(total.size, expected.size)
  })

  it('write one JSON object per cell, the hour as ISO text and the paid amount exact', () => {
    const cells = new UsageCells()
    cells.add(event({ partner: 'a\tb', customer: 'c"d' } as Partial<AuditEvent>))
    cells.add(event({ partner: 'a\tb', customer: 'c"d', payment_tx: '0xabc', payment_amount: '123456789012345678901234567890' } as Partial<AuditEvent>))
    cells.add(event({ key_id: null, outcome: 'refused' } as Partial<AuditEvent>))
    const rows = JSON.parse(cells.json()) as Array<Record<string, unknown>>
    assert.equal(rows.length, 2)
    assert.deepEqual(rows.find((r) => r.key_id === 'key_1'), {
      hour: '2026-12-06T10:00:00.000Z', key_id: 'key_1', customer: 'c"d', partner: 'a\tb', outcome: 'forwarded',
      requests: 2, retried: 0, server_errors: 0, cost: 2, bytes_in: 0, bytes_out: 20, paid: 1, paid_amount: '123456789012345678901234567890',
    })
    assert.deepEqual(rows.find((r) => r.key_id === ''), {
      hour: '2026-12-06T10:00:00.000Z', key_id: '', customer: '', partner: 'acme', outcome: 'refused',
      requests: 1, retried: 0, server_errors: 0, cost: 1, bytes_in: 0, bytes_out: 10, paid: 0, paid_amount: '0',
    })
  })
})
