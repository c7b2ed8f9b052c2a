import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { CircuitBreaker } from '../../src/reliability/circuit-breaker.js'

const T0 = 1_800_000_000_000

describe('circuit breaker', () => {
  test('opens once the last 10 s hold failure_threshold failures and more than half their requests failed', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 })
    b.failed(T0); b.succeeded(T0); b.succeeded(T0); b.failed(T0); b.succeeded(T0)
    assert.equal(b.isOpen, false, '2 failures: fewer than the threshold')
    b.failed(T0)
    assert.equal(b.isOpen, false, '3 failures of 6: only half')
    b.failed(T0)
    // 4 failures of 7
    assert.equal(b.isOpen, true)
    const c = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 })
    c.failed(T0); c.failed(T0); c.succeeded(T0); c.failed(T0)
    assert.equal(c.isOpen, true, '3 of 4 failed')
    assert.equal(c.opened, 1)
    assert.equal(c.blocks(T0 + 999), true)
    assert.equal(c.enter(T0 + 999), 'refused')
    assert.equal(c.retryAfterMs(T0 + 400), 600)
  })

  test('one key failing while other keys succeed never opens it: the failures stay under half', () => {
    const b = new CircuitBreaker({ failureThreshold: 5, openMs: 1000 })
    for (let i = 0; i < 100; i++) {
      b.failed(T0 + i * 10) // one key's requests to a failing endpoint …
      b.succeeded(T0 + i * 10) // … and everyone else's, at least as many
      b.succeeded(T0 + i * 10 + 5)
    }
    assert.equal(b.isOpen, false)
    assert.equal(b.enter(T0 + 1000), 'pass')
  })

  test('failures older than the 10 s window are forgotten', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 })
    b.failed(T0); b.failed(T0)
    b.failed(T0 + 10_500)
    assert.equal(b.isOpen, false, 'two of the three failures left the window')
    b.failed(T0 + 10_600); b.failed(T0 + 10_700)
    assert.equal(b.isOpen, true)
  })

  test('refusals of a credential count only once a second key sees them: a 401 then opens it, a 403 counts as a failure', () => {
    const b = new CircuitBreaker({ failureThreshold: 2, openMs: 1000 })
    for (let i = 0; i < 10; i++) assert.equal(b.rejected(T0 + i, 'key_a', true), false)
    assert.equal(b.isOpen, false, 'one key alone never takes a credential out of rotation')
    assert.equal(b.rejected(T0 + 20, 'key_b', true), true)
    assert.equal(b.isOpen, true)
    const c = new CircuitBreaker({ failureThreshold: 2, openMs: 1000 })
    c.rejected(T0, 'key_a', false)
    assert.equal(c.rejected(T0 + 1, 'key_b', false), true)
    assert.equal(c.isOpen, false, 'a 403 is one failure')
    c.rejected(T0 + 2, 'key_a', false)
    assert.equal(c.isOpen, true)
    // a key's refusal older than the window no longer pairs with a new one
    const d = new CircuitBreaker({ failureThreshold: 1, openMs: 1000 })
    d.rejected(T0, 'key_a', true)
    assert.equal(d.rejected(T0 + 10_001, 'key_b', true), false)
  })

  test('a late success of a request sent before it opened closes it too', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000 })
    b.failed(T0)
    assert.equal(b.isOpen, true)
    b.succeeded(T0 + 10)
    assert.equal(b.isOpen, false)
  })

  test('after open_ms exactly one probe goes through; its success closes the breaker', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000 })
    b.failed(T0)
    assert.equal(b.blocks(T0 + 1000), false) // due: a request may become the probe
    assert.equal(b.enter(T0 + 1000), 'probe')
    assert.equal(b.blocks(T0 + 1001), true) // the probe is out: everyone else waits
    assert.equal(b.enter(T0 + 1001), 'refused')
    assert.ok(b.retryAfterMs(T0 + 1001) >= 1000)
    b.succeeded(T0 + 1002)
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
