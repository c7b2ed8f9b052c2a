import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { RetryBudget } from '../../src/reliability/retry-budget.js'

const T0 = 1_800_000_000_000

function drain (budget: RetryBudget, now: number, max = 10_000): number {
  let granted = 0
  while (granted < max && budget.tryRetry(now)) granted++
  return granted
}

describe('retry budget', () => {
  test('retries stay within the ratio of requests seen, plus the floor', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0 })
    for (let i = 0; i < 1000; i++) budget.recordRequest(T0 + i)
    assert.equal(drain(budget, T0 + 999), 200)
    assert.equal(budget.exhausted, 1)
    const floored = new RetryBudget({ ratio: 0.2, minPerSecond: 3 })
    for (let i = 0; i < 100; i++) floored.recordRequest(T0)
    assert.equal(drain(floored, T0), 20 + 3 * 10)
  })

  test('a quiet partner still gets the floor, an outage cannot multiply load', () => {
    const quiet = new RetryBudget({ ratio: 0.2, minPerSecond: 1 })
    quiet.recordRequest(T0)
    assert.equal(drain(quiet, T0), 10) // 1/s over the 10 s window
    // sustained outage: every request wants max_attempts - 1 = 2 retries
    const outage = new RetryBudget({ ratio: 0.2, minPerSecond: 0 })
    let sent = 0
    for (let i = 0; i < 5000; i++) {
      const now = T0 + i * 2 // 500 requests a second for 10 s
      outage.recordRequest(now)
      sent++
      for (let r = 0; r < 2; r++) if (outage.tryRetry(now)) sent++
    }
    assert.ok(sent <= 5000 * 1.2 + 1, `${sent} upstream attempts for 5000 requests`)
    assert.ok(sent >= 5000 * 1.19, `the budget is used, not starved: ${sent}`)
  })

  test('old requests and retries leave the window after ten seconds', () => {
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0 })
    for (let i = 0; i < 10; i++) budget.recordRequest(T0)
    assert.equal(drain(budget, T0), 5)
    assert.equal(drain(budget, T0 + 9_000), 0) // still inside the window
    assert.equal(drain(budget, T0 + 10_000), 0) // requests gone too: nothing to earn from
    for (let i = 0; i < 4; i++) budget.recordRequest(T0 + 10_000)
    assert.equal(drain(budget, T0 + 10_000), 2)
  })

  test('new settings apply to the counts already seen', () => {
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 0 })
    for (let i = 0; i < 10; i++) budget.recordRequest(T0)
    assert.equal(drain(budget, T0), 0)
    budget.configure({ ratio: 1, minPerSecond: 0 })
    assert.equal(drain(budget, T0), 10)
  })
})
