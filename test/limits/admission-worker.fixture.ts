// A second process for sqlite-admission-store.test.ts: opens the shared SQLite file, says
// 'ready', waits for 'go', fires its admits and reports how many were admitted.
import { setImmediate, setTimeout as sleep } from 'node:timers/promises'
import { openSqliteAdmissionStore } from '../../src/store/sqlite/sqlite-admission-store.js'
import type { Admission, AdmissionRequest } from '../../src/limits/admission.js'

export interface WorkerJob {
  file: string
  /** frozen store clock, so a rate limit cannot refill while the workers race */
  now: number
  admits: number
  request: AdmissionRequest
}

export interface WorkerReport {
  type: 'done'
  admitted: number
  refused: Record<string, number>
  /** admits that rejected (GovernanceUnavailableError), as text */
  failed: string[]
}

const job = JSON.parse(process.argv[2]!) as WorkerJob
const store = openSqliteAdmissionStore(job.file, { now: () => job.now })

/**
 * better-sqlite3 decides synchronously, so admits fired together in one process just run back
 * to back; spreading them out makes the two processes' decisions interleave on the file's
 * write lock.
 */
async function admitAll (report: WorkerReport): Promise<void> {
  for (let i = 0; i < job.admits; i++) {
    // a loop turn between admits, and now and then a timer's worth, so neither worker can
    // finish before the other has started
    if (i % 10 === 9) await sleep(1)
    else await setImmediate()
    let result: Admission
    try {
      result = await store.admit(job.request)
    } catch (err) {
      report.failed.push(`${String(err)} (${String((err as Error).cause)})`)
      continue
    }
    if (result.ok) report.admitted++
    else report.refused[result.code] = (report.refused[result.code] ?? 0) + 1
  }
}

// 'go' carries a wall-clock instant: both workers start at it, not when their message arrives
process.once('message', (go: { at: number }) => {
  void (async () => {
    await sleep(Math.max(0, go.at - Date.now()))
    const report: WorkerReport = { type: 'done', admitted: 0, refused: {}, failed: [] }
    await admitAll(report)
    await store.close()
    process.send!(report, () => process.disconnect())
  })()
})
process.send!({ type: 'ready' })
