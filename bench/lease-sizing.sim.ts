// Lease sizing on a Zipf-spread key population, simulated: the real Lease class (its demand
// estimate, sizing, lifetimes and idleness) driven by synthetic time, with no store and no
// network. Prints the store interactions one worker makes per request in the steady state:
// decisions (a request no lease covers), background top-ups and returns. Change the constants
// in src/limits/lease.ts to compare sizings (docs/benchmarks.md has the table this produced).
// Run: npm run build && node dist/bench/lease-sizing.sim.js [requests per second] [keys]
//
// The traffic is what bench:limits' redis-zipf-10k sends one worker: keys drawn with
// probability ∝ rank^-1.1, Poisson arrivals. The store always grants what a lease asks (the
// benchmark's limits are far above its traffic). The sweep is modelled at each key's next
// request: a lease past its lifetime or idle by then has been given back (one return).
import { Lease } from '../src/limits/lease.js'
import type { LeaseSubject } from '../src/limits/admission.js'
import { zipfSequence } from './lib/zipf-sequence.js'

const RATE = Number(process.argv[2] ?? 14_000)
const KEYS = Number(process.argv[3] ?? 10_000)
const SECONDS = 40
/** the first half warms every estimate; the second half is counted */
const COUNT_FROM_MS = SECONDS * 1000 / 2

const n = RATE * SECONDS
const ranks = Array.from({ length: KEYS }, (_, i) => i)
const keys = zipfSequence(ranks, { exponent: 1.1, length: n, seed: 1 })
const subject = { kind: 'rate', group: 'o:sim', spec: { name: 'key', subject: 'sim', intervalMs: 0.01, burst: 100_000, quota: 100_000, windowSeconds: 1 } } as LeaseSubject
const leases = ranks.map(() => new Lease(subject, 'key_rate', 0))

let state = 0x2545f491
function uniform (): number {
  state = (state + 0x6d2b79f5) | 0
  let t = Math.imul(state ^ (state >>> 15), 1 | state)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

let now = 0
let counted = 0
let decisions = 0
let topUps = 0
let returns = 0
for (let i = 0; i < n; i++) {
  now += -Math.log(1 - uniform()) * 1000 / RATE
  const counting = now >= COUNT_FROM_MS
  if (counting) counted++
  const lease = leases[keys[i]!]!
  if (lease.units > 0 && (now >= lease.expiresAt || lease.idle(now))) {
    lease.units = 0
    if (counting) returns++
  }
  lease.see(now, 1)
  if (lease.has(1, now)) {
    lease.units--
    lease.takenSinceGrant++
    if (lease.low()) {
      const want = lease.want(now)
      if (want > 0) {
        lease.granted(want, 0, 0, now)
        if (counting) topUps++
      }
    }
    continue
  }
  if (counting) decisions++
  const want = lease.want(now)
  if (want > 0) lease.granted(want, 0, 0, now)
}
const per = (x: number): string => (x / counted).toFixed(4)
console.log(`${RATE} requests/s over ${KEYS} keys (Zipf s = 1.1), ${SECONDS} s, the second half counted:`)
console.log(`store interactions per request: decisions ${per(decisions)}, top-ups ${per(topUps)}, returns ${per(returns)}, total ${per(decisions + topUps + returns)}`)
