// Waiting on a forked test worker without hanging the test if it dies first.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** the child's next message; rejects if it exits first instead of leaving the test hanging */
export async function nextMessage (child: ChildProcess): Promise<unknown> {
  const ac = new AbortController()
  try {
    return await Promise.race([
      once(child, 'message', { signal: ac.signal }).then(([message]) => message),
      once(child, 'exit', { signal: ac.signal }).then(([code]) => { throw new Error(`worker exited (${code}) before reporting`) }),
    ])
  } finally {
    ac.abort()
  }
}
