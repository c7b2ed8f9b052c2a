// The replay guard: each payment payload is accepted once (docs/payments.md), across every worker and
// node sharing the store. Implementations: Redis (store/redis/redis-replay-guard.ts) in distributed mode, the
// embedded SQLite file (store/sqlite/sqlite-replay-guard.ts); both run test/payments/replay-guard.contract.ts.
//
// Lifecycle of a claim (`key` from replay-key.ts):
//
//   claim ──► verify ──► forward ──► settle
//     │         │ invalid / facilitator failed,
//     │         │ or refused before forwarding  ──► release: nothing was paid or served,
//     │         │                                   the payer may send the same payment again
//     │         └ forwarded ──────────────────────► kept until it expires, whatever the upstream
//     │                                             or the settle answered: the partner already
//     │                                             did work on its strength, and a payment whose
//     │                                             settle failed would fail again
//     └ false ──► 402 PAYMENT_REPLAYED_REASON
//
// Claiming before verify makes concurrent duplicates cost one facilitator call, not one each.

/** the 402 reason when claim() answers false */
export const PAYMENT_REPLAYED_REASON = 'Payment already used'

export interface PaymentReplayGuard {
  /**
   * true when this caller now holds the payment, false when a live claim already exists.
   * Rejects with GovernanceUnavailableError when the store does not answer: the proxy then
   * refuses (503), it never accepts a payment it could not claim.
   */
  claim (key: string, ttlMs: number): Promise<boolean>
  /** Gives a claim back. Only for a payment that never reached the upstream (see above). */
  release (key: string): Promise<void>
}
