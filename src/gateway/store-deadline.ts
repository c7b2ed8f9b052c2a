// The bound on a control-store lookup a request waits for (RELAYKEY_KEY_LOAD_TIMEOUT_MS): a
// store that stops answering without closing anything fails the request closed (503) instead
// of holding it. The lookup itself is not cancelled; whoever shares it may still use its answer.

import { GovernanceUnavailableError } from '../errors.js'

/** `promise`'s outcome, or a GovernanceUnavailableError after `ms` */
export function withDeadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new GovernanceUnavailableError(`the control store did not answer ${what} within ${ms} ms`)), ms)
    promise.then(
      (value) => { clearTimeout(timer); resolve(value) },
      (err: unknown) => { clearTimeout(timer); reject(err) },
    )
  })
}
