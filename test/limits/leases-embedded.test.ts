// Admission by lease, embedded mode, as clients see it: one node with 2 workers sharing one SQLite
// file. Workers admit from leased units locally; a budget must still be spent exactly, and a
// revocation or a lowered limit must still reach both workers within 1 s
// (docs/limits-and-budgets.md). The distributed twin, with kill -9, is leases-distributed.test.ts.
import { after, before, describe, it } from 'node:test'
import { startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { budgetLoweredUnderLoad, budgetSpentExactlyUnderSustainedLoad, rateLimitLoweredUnderLoad, revocationUnderLoad, warmUp } from '../helpers/lease-load.js'

const WORKERS = 2
const LOOPS = 16

describe('admission by lease, embedded mode (1 node x 2 workers, SQLite)', () => {
  let rk: RelayKeyProcess
  let partner: MockPartner

  before(async () => {
    partner = await startMockPartner()
    rk = await startRelayKey({
      workers: WORKERS,
      env: {
        // a timed-out decision may still have taken its units (fail closed, never refunded on
        // doubt); these tests are about exactness under load, not timeouts
        RELAYKEY_GOVERNANCE_TIMEOUT_MS: '3000',
        // thousands of forwarded requests: no access-log line each (refusals are still logged)
        RELAYKEY_ACCESS_LOG_SAMPLE: '0',
      },
    })
    await warmUp([rk], partner, 1_000)
  }, { timeout: 30_000 })

  after(async () => {
    await rk?.stop()
    await partner?.close()
  })

  it('sustained load over both workers spends a budget of 2000 exactly: the partner gets 2000, usage says 2000 used', async (t) => {
    await budgetSpentExactlyUnderSustainedLoad([rk], partner, { budget: 2_000, loops: LOOPS, diagnostic: (m) => t.diagnostic(m) })
  })

  it('a key revoked under load (leases out) answers 401 key_revoked on both workers within 1 s', async (t) => {
    await revocationUnderLoad([rk], partner, { loops: LOOPS, diagnostic: (m) => t.diagnostic(m) })
  })

  it('a budget lowered under load (leases out) answers 429 budget_exceeded on both workers within 1 s, and the partner gets nothing more', async (t) => {
    await budgetLoweredUnderLoad([rk], partner, { loops: LOOPS, diagnostic: (m) => t.diagnostic(m) })
  })

  it('a rate limit lowered under load (leases out) admits at most one more request per worker after 1 s', async (t) => {
    await rateLimitLoweredUnderLoad([rk], partner, { loops: LOOPS, holders: WORKERS, diagnostic: (m) => t.diagnostic(m) })
  })
})
