// What every PaymentReplayGuard must do, run against each implementation by its own test file
// (Redis, SQLite). Each case uses keys no other case shares; cleanup is the opener's job.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, type TestContext } from 'node:test'
import type { PaymentReplayGuard } from '../../src/payments/replay-guard.js'

export interface OpenedReplayGuards {
  /** two guards on the same store through separate connections, as two workers have */
  first: PaymentReplayGuard
  second: PaymentReplayGuard
  cleanup (): Promise<void>
}

export type OpenReplayGuards = () => Promise<OpenedReplayGuards>

const TTL = 60_000

function paymentKey (): string {
  return createHash('sha256').update(randomBytes(16)).digest('hex')
}

export function runReplayGuardContract (name: string, open: OpenReplayGuards): void {
  describe(`payment replay guard contract: ${name}`, () => {
    async function guards (t: TestContext): Promise<OpenedReplayGuards> {
      const opened = await open()
      t.after(() => opened.cleanup())
      return opened
    }

    it('accepts a payment once, from any connection', async (t) => {
      const { first, second } = await guards(t)
      const key = paymentKey()
      assert.equal(await first.claim(key, TTL), true)
      assert.equal(await first.claim(key, TTL), false)
      assert.equal(await second.claim(key, TTL), false)
    })

    it('keeps payments apart', async (t) => {
      const { first, second } = await guards(t)
      assert.equal(await first.claim(paymentKey(), TTL), true)
      assert.equal(await second.claim(paymentKey(), TTL), true)
    })

    it('gives exactly one of 50 concurrent claims of one payment, split over two connections', async (t) => {
      const { first, second } = await guards(t)
      const key = paymentKey()
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? first : second).claim(key, TTL)))
      assert.equal(results.filter(Boolean).length, 1)
    })

    it('gives each of many payments claimed concurrently exactly once', async (t) => {
      const { first, second } = await guards(t)
      const keys = Array.from({ length: 20 }, paymentKey)
      const claims = keys.flatMap((key) => [first.claim(key, TTL), second.claim(key, TTL), first.claim(key, TTL)])
      const results = await Promise.all(claims)
      for (let k = 0; k < keys.length; k++) {
        assert.equal(results.slice(k * 3, k * 3 + 3).filter(Boolean).length, 1, `payment ${k}`)
      }
    })

    it('lets a released payment be claimed again, from another connection', async (t) => {
      const { first, second } = await guards(t)
      const key = paymentKey()
      assert.equal(await first.claim(key, TTL), true)
      await first.release(key)
      assert.equal(await second.claim(key, TTL), true)
      assert.equal(await first.claim(key, TTL), false)
    })

    it('releasing a payment nobody claimed changes nothing', async (t) => {
      const { first } = await guards(t)
      const key = paymentKey()
      await first.release(key)
      assert.equal(await first.claim(key, TTL), true)
    })

    it('forgets a claim once its ttl has passed', async (t) => {
      const { first, second } = await guards(t)
      const key = paymentKey()
      assert.equal(await first.claim(key, 100), true)
      assert.equal(await second.claim(key, 100), false)
      await sleep(250)
      assert.equal(await second.claim(key, TTL), true)
      assert.equal(await first.claim(key, TTL), false)
    })
  })
}
