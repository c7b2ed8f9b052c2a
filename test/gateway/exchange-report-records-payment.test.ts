// The audit event of a paid request carries the settlement's transaction id and the amount as
// the proxy set them on ExchangeFacts; an amount the audit stores could not keep exactly is left
// out rather than allowed to stall the audit trail.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import type { AuditEvent } from '../../src/audit/audit-event.js'
import { ExchangeFacts, ExchangeReporter } from '../../src/gateway/exchange-report.js'
import { AccessLog } from '../../src/telemetry/access-log.js'
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.js'

function reporter (events: AuditEvent[]): ExchangeReporter {
  return new ExchangeReporter({
    audit: { record: (event) => { events.push(event) } },
    metrics: new GatewayMetrics({ keyCache: () => ({ hits: 0, misses: 0, size: 0 }), reliability: () => [], audit: () => null }),
    access: new AccessLog(pino({ level: 'silent' }), 0),
  })
}

function facts (tx: string | null, amount: string | null): ExchangeFacts {
  const f = new ExchangeFacts('req-1', 'GET')
  f.requestedPartner = 'acme'
  f.status = 200
  f.outcome = 'forwarded'
  f.paymentTx = tx
  f.paymentAmount = amount
  return f
}

describe('exchange report: payments', () => {
  it('records payment_tx and payment_amount as set, and null when unpaid', () => {
    const events: AuditEvent[] = []
    const report = reporter(events)
    report.report(facts('0xabc', '18446744073709551616'), null)
    report.report(facts(null, null), null)
    assert.deepEqual(events.map((e) => [e.payment_tx, e.payment_amount]), [['0xabc', '18446744073709551616'], [null, null]])
  })

  it('keeps only canonical decimal amounts of at most 78 digits', () => {
    const events: AuditEvent[] = []
    const report = reporter(events)
    const kept = ['0', '1', '9'.repeat(78)]
    const dropped = ['007', '1.5', '-1', '', '0x10', ' 1', '1e3', '9'.repeat(79)]
    for (const amount of [...kept, ...dropped]) report.report(facts('0xabc', amount), null)
    assert.deepEqual(events.map((e) => e.payment_amount), [...kept, ...dropped.map(() => null)])
  })
})
