// Named admin tokens on a running node, as an operator sets them up: a write token changes and
// the change log names it, a read token reads and is refused every change, and no token value
// reaches the log.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { distributedEnv, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'

const OPS = 'ops-token-' + 'a1'.repeat(16)
const AUDITOR = 'auditor-token-' + 'b2'.repeat(16)

async function as (rk: RelayKeyProcess, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(rk.adminUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, body: await res.json() }
}

describe('named admin tokens on a distributed node (RELAYKEY_ADMIN_TOKENS, no RELAYKEY_ADMIN_TOKEN)', { timeout: 60_000 }, () => {
  let db: TestDatabase
  let rk: RelayKeyProcess

  before(async () => {
    db = await createTestDatabase()
    const env = distributedEnv(db.url)
    delete (env as Record<string, string | undefined>).RELAYKEY_ADMIN_TOKEN
    env.RELAYKEY_ADMIN_TOKENS = JSON.stringify([{ name: 'ops', token: OPS, scope: 'write' }, { name: 'auditor', token: AUDITOR, scope: 'read' }])
    rk = await startRelayKey({ workers: 1, env })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await db.drop()
  })

  it('the write token changes, and the change log names it; the read token is refused and reads', async () => {
    const created = await as(rk, OPS, 'POST', '/admin/policies', { name: 'by-ops' })
    assert.equal(created.status, 201)
    const refused = await as(rk, AUDITOR, 'DELETE', `/admin/policies/${created.body.id}`)
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'forbidden')
    assert.equal((await as(rk, AUDITOR, 'GET', `/admin/policies/${created.body.id}`)).status, 200, 'the refused delete deleted')
    const log = await as(rk, AUDITOR, 'GET', '/admin/changes')
    assert.equal(log.status, 200)
    assert.deepEqual(log.body.changes.map((c: any) => [c.token_name, c.action, c.resource_id]), [['ops', 'create', created.body.id]])
    assert.ok(!rk.output().includes(OPS) && !rk.output().includes(AUDITOR), 'a token value is in the log')
  })
})

describe('named admin tokens from a file on an embedded node (RELAYKEY_ADMIN_TOKENS_FILE)', { timeout: 60_000 }, () => {
  let rk: RelayKeyProcess
  before(async () => {
    const probe = await startRelayKey({ workers: 1 })
    const file = join(probe.dataDir, 'tokens.json')
    await probe.stop()
    writeFileSync(file, JSON.stringify([{ name: 'ci', token: OPS, scope: 'write' }]), { mode: 0o600 })
    rk = await startRelayKey({ workers: 1, dataDir: probe.dataDir, env: { RELAYKEY_ADMIN_TOKENS_FILE: file } })
  })
  after(async () => { assert.equal(await rk.stop(), 0) })

  it('the file\'s token and the generated admin token both work, each under its own name', async () => {
    assert.equal((await as(rk, OPS, 'POST', '/admin/policies', { name: 'by-ci' })).status, 201)
    assert.equal((await rk.admin('POST', '/admin/policies', { name: 'by-admin' })).status, 201)
    const { changes } = (await rk.admin('GET', '/admin/changes')).body
    assert.deepEqual(changes.map((c: any) => c.token_name), ['admin', 'ci'])
  })
})
