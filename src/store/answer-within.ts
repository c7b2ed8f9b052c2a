// A bound on how long a caller waits for a store. Nothing is cancelled: the operation may still
// finish (and a write still apply) after the caller has been told it did not answer in time.
import { GovernanceUnavailableError } from '../errors.js'

/** `promise`'s outcome, or GovernanceUnavailableError(`message`) once `ms` have passed without one */
export function answerWithin<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new GovernanceUnavailableError(message)), ms)
    promise.then(
      (value) => { clearTimeout(timer); resolve(value) },
      (err: unknown) => { clearTimeout(timer); reject(err) },
    )
  })
}
