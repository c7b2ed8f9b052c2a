// A second process for sqlite-replay-guard.test.ts: opens the shared SQLite file, says 'ready',
// waits for 'go', claims every payment key of the job and reports which it won.
import { setImmediate, setTimeout as sleep } from 'node:timers/promises'
import { openSqliteReplayGuard } from '../../src/store/sqlite/sqlite-replay-guard.js'

export interface ClaimJob {
  file: string
  keys: string[]
}

export interface ClaimReport {
  type: 'done'
  /** indexes into `keys` this process claimed */
  won: number[]
  /** claims that rejected, as text */
  failed: string[]
}

const job = JSON.parse(process.argv[2]!) as ClaimJob
const guard = openSqliteReplayGuard(job.file)

// better-sqlite3 is synchronous: a loop turn between claims lets the two processes interleave
// on the file's write lock instead of one finishing before the other starts.
async function claimAll (report: ClaimReport): Promise<void> {
  for (let i = 0; i < job.keys.length; i++) {
    // now and then a timer's worth, so neither process can finish before the other has started
    if (i % 10 === 9) await sleep(1)
    else await setImmediate()
    try {
      if (await guard.claim(job.keys[i]!, 60_000)) report.won.push(i)
    } catch (err) {
      report.failed.push(`${String(err)} (${String((err as Error).cause)})`)
    }
  }
}

// 'go' carries a wall-clock instant: both processes start at it, not when their message arrives
process.once('message', (go: { at: number }) => {
  void (async () => {
    await sleep(Math.max(0, go.at - Date.now()))
    const report: ClaimReport = { type: 'done', won: [], failed: [] }
    await claimAll(report)
    await guard.close()
    process.send!(report, () => process.disconnect())
  })()
})
process.send!({ type: 'ready' })
