// The SQLite replay guard (embedded mode): the shared contract through two connections to one
// temp file, two worker processes racing for the same payments, and the table's upkeep.
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it, type TestContext } from 'node:test'
import { openSqliteReplayGuard } from '../../src/store/sqlite/sqlite-replay-guard.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'
import type { ClaimJob, ClaimReport } from './replay-claim-worker.fixture.js'
import { runReplayGuardContract } from './replay-guard.contract.js'
import { nextMessage } from '../helpers/child-messages.js'

const WORKER = fileURLToPath(new URL('./replay-claim-worker.fixture.js', import.meta.url))

async function tempFile (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-payments-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return join(dir, 'relaykey.db')
}

function keyOf (i: number): string {
  return createHash('sha256').update(`payment ${i}`).digest('hex')
}

runReplayGuardContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'relaykey-payments-'))
  const file = join(dir, 'relaykey.db')
  const first = openSqliteReplayGuard(file)
  const second = openSqliteReplayGuard(file)
  return {
    first,
    second,
    async cleanup () {
      await first.close()
      await second.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

describe('sqlite replay guard: two worker processes on one file', () => {
  it('gives each of 300 payments to exactly one of two processes claiming all of them at once', async (t) => {
    const file = await tempFile(t)
    // the schema exists before the race, as the control store creates it at start
    openSqliteDatabase(file).close()
    const job: ClaimJob = { file, keys: Array.from({ length: 300 }, (_, i) => keyOf(i)) }
    const children: ChildProcess[] = []
    t.after(() => {
      for (const child of children) if (child.exitCode === null) child.kill()
    })
    for (let i = 0; i < 2; i++) children.push(fork(WORKER, [JSON.stringify(job)], { stdio: 'inherit' }))
    await Promise.all(children.map((child) => nextMessage(child)))
    const pending = children.map(async (child) => await nextMessage(child) as ClaimReport)
    const at = Date.now() + 100
    for (const child of children) child.send({ at })
    const reports = await Promise.all(pending)
    t.diagnostic(`won per process: ${reports.map((r) => r.won.length).join(' + ')}`)
    assert.deepEqual(reports.flatMap((r) => r.failed), [])
    const won = reports.flatMap((r) => r.won).sort((a, b) => a - b)
    assert.deepEqual(won, job.keys.map((_, i) => i))
  })
})

describe('sqlite replay guard: the table', () => {
  it('takes over an expired claim and sweeps expired rows lazily', async (t) => {
    const file = await tempFile(t)
    let now = Date.parse('2026-03-15T12:00:00.000Z')
    const guard = openSqliteReplayGuard(file, { now: () => now })
    t.after(() => guard.close())
    assert.equal(await guard.claim(keyOf(1), 1000), true)
    assert.equal(await guard.claim(keyOf(2), 120_000), true)
    now += 1000
    assert.equal(await guard.claim(keyOf(1), 1000), true, 'expired at its expiry')
    const db = openSqliteDatabase(file)
    t.after(() => db.close())
    const rows = (): number => db.prepare('SELECT count(*) FROM payment_claims').pluck().get() as number
    assert.equal(rows(), 2)
    now += 61_000
    // the next claim is past the sweep interval: key 1's row goes, key 2's stays
    assert.equal(await guard.claim(keyOf(3), 1000), true)
    assert.equal(rows(), 2)
    assert.deepEqual(db.prepare('SELECT hex(hash) FROM payment_claims ORDER BY 1').pluck().all(), [keyOf(2), keyOf(3)].map((k) => k.toUpperCase()).sort())
  })
})
