import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { fullJitterDelayMs, isIdempotentMethod, parseRetryAfter, retryAfterMs } from '../../src/reliability/retry-rules.js'

describe('retry rules', () => {
  test('only methods RFC 9110 calls idempotent may be sent twice without an Idempotency-Key', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) assert.equal(isIdempotentMethod(m), true, m)
    for (const m of ['POST', 'PATCH', 'CONNECT', 'get']) assert.equal(isIdempotentMethod(m), false, m)
  })

  test('full jitter stays in [0, min(max, base·2^(n-1))) and spreads out', () => {
    for (let retry = 1; retry <= 6; retry++) {
      const ceiling = Math.min(1000, 100 * 2 ** (retry - 1))
      const draws = Array.from({ length: 400 }, () => fullJitterDelayMs(retry, 100, 1000))
      assert.ok(draws.every((d) => d >= 0 && d < ceiling), `retry ${retry}`)
      // not a constant: a quarter of the range apart at least
      assert.ok(Math.max(...draws) - Math.min(...draws) > ceiling / 4, `retry ${retry} spreads`)
    }
    assert.equal(fullJitterDelayMs(3, 0, 0), 0)
  })

  test('Retry-After: delta seconds, an HTTP date, or nothing usable', () => {
    const now = Date.parse('2026-11-27T12:00:00Z')
    assert.equal(parseRetryAfter('3', now), 3000)
    assert.equal(parseRetryAfter('0', now), 0)
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 12:00:05 GMT', now), 5000)
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 11:59:00 GMT', now), 0) // in the past: now
    assert.equal(parseRetryAfter('soon', now), -1)
    assert.equal(parseRetryAfter('-1', now), -1)
    assert.equal(parseRetryAfter('1.5', now), -1)
  })

  test('Retry-After is found in undici raw headers whatever its case', () => {
    const raw = [Buffer.from('Content-Type'), Buffer.from('text/plain'), Buffer.from('RETRY-AFTER'), Buffer.from(' 2 ')]
    assert.equal(retryAfterMs(raw, 0), 2000)
    assert.equal(retryAfterMs([Buffer.from('x-retry-afte'), Buffer.from('2')], 0), -1)
    assert.equal(retryAfterMs([], 0), -1)
  })
})
