import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { CircuitBreaker } from '../../src/reliability/circuit-breaker.js'

const T0 = 1_800_000_000_000

describe('circuit breaker', () => {
  test('opens after failure_threshold consecutive failures; a success in between resets the count', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 })
    b.failed(T0); b.failed(T0); b.succeeded(); b.failed(T0); b.failed(T0)
    assert.equal(b.blocks(T0), false)
    assert.equal(b.enter(T0), 'pass')
    b.failed(T0)
    assert.equal(b.isOpen, true)
    assert.equal(b.opened, 1)
    assert.equal(b.blocks(T0 + 999), true)
    assert.equal(b.enter(T0 + 999), 'refused')
    assert.equal(b.retryAfterMs(T0 + 400), 600)
  })

  test('after open_ms exactly one probe goes through; its success closes the breaker', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000 })
    b.failed(T0)
    assert.equal(b.blocks(T0 + 1000), false) // due: a request may become the probe
    assert.equal(b.enter(T0 + 1000), 'probe')
    assert.equal(b.blocks(T0 + 1001), true) // the probe is out: everyone else waits
    assert.equal(b.enter(T0 + 1001), 'refused')
    assert.ok(b.retryAfterMs(T0 + 1001) >= 1000)
    b.succeeded()
    assert.equal(b.isOpen, false)
    assert.equal(b.enter(T0 + 1002), 'pass')
  })

  test('a failed probe opens it for another open_ms', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000 })
    b.failed(T0)
    assert.equal(b.enter(T0 + 1500), 'probe')
    b.failed(T0 + 1600)
    assert.equal(b.enter(T0 + 2599), 'refused')
    assert.equal(b.enter(T0 + 2600), 'probe')
    assert.equal(b.opened, 1) // reopening is not a new opening
  })

  test('a late failure of a request sent before it opened does not extend the open time', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000 })
    b.failed(T0)
    b.failed(T0 + 500)
    assert.equal(b.enter(T0 + 1000), 'probe')
  })

  test('a probe that ends without a verdict hands the slot back', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 100 })
    b.failed(T0)
    assert.equal(b.enter(T0 + 100), 'probe')
    b.releaseProbe()
    assert.equal(b.enter(T0 + 101), 'probe')
  })

  test('trip opens at once (a credential the vendor refuses)', () => {
    const b = new CircuitBreaker({ failureThreshold: 50, openMs: 1000 })
    b.trip(T0)
    assert.equal(b.enter(T0 + 1), 'refused')
    b.trip(T0 + 500) // already open: the open time is not pushed back
    assert.equal(b.enter(T0 + 1000), 'probe')
  })
})
