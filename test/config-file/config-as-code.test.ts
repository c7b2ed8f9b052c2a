// Configuration as code, as an operator runs it: `relaykey config diff|apply|export|seal` against
// real nodes in both modes, and an embedded node started from RELAYKEY_CONFIG and reloaded with
// SIGHUP. The CLI runs as a separate process (dist/src/cli.js) and is judged by its output and
// exit codes; requests go through the proxy to a mock partner.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { distributedEnv, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'

const CLI = new URL('../../src/cli.js', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'relaykey-config-'))

interface Run { code: number | null; stdout: string; stderr: string }

function runCli (env: Record<string, string>, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    child.stdin.end(input ?? '')
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

function file (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** the file an operator keeps in git: two partners, their credentials, two policies, bindings, a key */
function relaykeyYaml (partnerUrl: string, edits: { weight?: number; monthly?: number; sealed?: string; withLedger?: boolean } = {}): string {
  const ledger = edits.withLedger === false ? '' : `
  - slug: ledger
    base_urls: { production: ${partnerUrl}/ledger }
    auth: { type: bearer }
    retry: { max_attempts: 3 }`
  const ledgerCredential = edits.withLedger === false ? '' : `
  - partner: ledger
    name: main
    environment: production
    secret: { provider: env, ref: LEDGER_TOKEN }
    weight: ${edits.weight ?? 2}`
  const ledgerPolicy = edits.withLedger === false ? '' : `
  - name: ledger-read
    allow: [{ method: GET, path: /accounts/* }]`
  const ledgerBinding = edits.withLedger === false ? '' : `
  - { policy: ledger-read, partner: ledger, credentials: [main] }`
  return `# relaykey.yaml
partners:
  - slug: kyc
    base_urls: { production: ${partnerUrl}/kyc }
    auth: { type: header, name: X-App-Token }${ledger}
credentials:
  - partner: kyc
    name: prod
    environment: production
    secret: ${edits.sealed === undefined ? '{ provider: env, ref: KYC_TOKEN }' : edits.sealed}${ledgerCredential}
policies:
  - name: kyc-standard
    budget: { monthly: ${edits.monthly ?? 1000} }
    costs: [{ method: POST, path: /applicants, cost: 5 }]${ledgerPolicy}
bindings:
  - { policy: kyc-standard, partner: kyc }${ledgerBinding}
keys:
  - { name: checkout-service, policy: kyc-standard, environment: production, customer: acme }
`
}

for (const mode of ['embedded', 'distributed'] as const) {
  describe(`relaykey config diff, apply, export and seal against a ${mode} node`, () => {
    let partner: MockPartner
    let rk: RelayKeyProcess
    let db: TestDatabase | null = null
    let cliEnv: Record<string, string>
    let key = ''
    const masterKey = randomBytes(32).toString('hex')
    const tokens = { KYC_TOKEN: `kyc-${randomBytes(8).toString('hex')}`, LEDGER_TOKEN: `ledger-${randomBytes(8).toString('hex')}` }

    before(async () => {
      partner = await startMockPartner()
      if (mode === 'embedded') {
        rk = await startRelayKey({ workers: 1, env: { ...tokens, RELAYKEY_MASTER_KEY: masterKey } })
        cliEnv = { RELAYKEY_DATA_DIR: rk.dataDir, RELAYKEY_ADMIN_URL: rk.adminUrl }
      } else {
        db = await createTestDatabase()
        rk = await startRelayKey({ workers: 1, env: { ...distributedEnv(db.url), ...tokens, RELAYKEY_MASTER_KEY: masterKey } })
        cliEnv = { RELAYKEY_ADMIN_URL: rk.adminUrl, RELAYKEY_ADMIN_TOKEN: rk.adminToken }
      }
    })
    after(async () => {
      assert.equal(await rk.stop(), 0)
      await partner.close()
      await db?.drop()
    })

    it('applies a file, issuing its key once, and the key works through the proxy', async () => {
      const path = file(`${mode}-v1.yaml`, relaykeyYaml(partner.url))
      const diff = await runCli(cliEnv, ['config', 'diff', '-f', path])
      assert.equal(diff.code, 3, diff.stderr)
      assert.match(diff.stdout, /^\+ partner kyc$/m)
      assert.match(diff.stdout, /^\+ key checkout-service/m)
      assert.match(diff.stdout, /^9 changes$/m)
      const apply = await runCli(cliEnv, ['config', 'apply', '-f', path])
      assert.equal(apply.code, 0, apply.stderr)
      const issued = /key checkout-service \(key_[A-Za-z0-9_-]+\): (vk_\S+)/.exec(apply.stdout)
      assert.ok(issued !== null, apply.stdout)
      key = issued[1]!
      const res = await request(`${rk.proxyUrl}/proxy/kyc/applicants/1`, { headers: { 'x-relaykey': key } })
      assert.equal(res.statusCode, 200, await res.body.text())
      assert.equal(partner.received.at(-1)!.headers['x-app-token'], tokens.KYC_TOKEN)
      // applied again: nothing to do, and the key is not issued twice
      const again = await runCli(cliEnv, ['config', 'diff', '-f', path])
      assert.equal(again.code, 0, again.stdout + again.stderr)
      assert.equal(again.stdout.trim(), 'no changes')
    })

    it('exports a file that applies back as no change', async () => {
      const exported = await runCli(cliEnv, ['config', 'export'])
      assert.equal(exported.code, 0, exported.stderr)
      assert.ok(!exported.stdout.includes(tokens.KYC_TOKEN))
      assert.doesNotMatch(exported.stdout, /\b(id|created_at|updated_at|prt_|cred_|pol_)\b/)
      const path = file(`${mode}-export.yaml`, exported.stdout)
      const diff = await runCli(cliEnv, ['config', 'diff', '-f', path])
      assert.equal(diff.code, 0, diff.stdout + diff.stderr)
      assert.equal(diff.stdout.trim(), 'no changes')
    })

    it('lists exactly the edits, field by field, applies them, and then has nothing to do', async () => {
      const path = file(`${mode}-v2.yaml`, relaykeyYaml(partner.url, { weight: 3, monthly: 2000 }))
      const diff = await runCli(cliEnv, ['config', 'diff', '-f', path])
      assert.equal(diff.code, 3)
      assert.equal(diff.stdout, [
        '~ credential ledger/main',
        '    weight: 2 → 3',
        '~ policy kyc-standard',
        '    budget: {"monthly":1000} → {"monthly":2000}',
        '2 changes',
        '',
      ].join('\n'))
      const json = await runCli(cliEnv, ['config', 'diff', '-f', path, '--json'])
      assert.equal(json.code, 3)
      assert.deepEqual(JSON.parse(json.stdout).changes.map((c: { action: string; kind: string; name: string }) => `${c.action} ${c.kind} ${c.name}`),
        ['update credential ledger/main', 'update policy kyc-standard'])
      assert.equal((await runCli(cliEnv, ['config', 'apply', '-f', path])).code, 0)
      const after = await runCli(cliEnv, ['config', 'diff', '-f', path])
      assert.equal(after.code, 0, after.stdout)
    })

    it('takes a secret sealed with config seal, sends it to the partner, and sees a resealed value as a change', async () => {
      const value = `sealed-${randomBytes(8).toString('hex')}`
      const sealed = await runCli({ RELAYKEY_MASTER_KEY: masterKey }, ['config', 'seal'], value + '\n')
      assert.equal(sealed.code, 0, sealed.stderr)
      const ref = JSON.parse(sealed.stdout) as { provider: string; ciphertext: string }
      assert.equal(ref.provider, 'inline')
      assert.ok(!sealed.stdout.includes(value))
      const path = file(`${mode}-sealed.yaml`, relaykeyYaml(partner.url, { weight: 3, monthly: 2000, sealed: JSON.stringify(ref) }))
      const apply = await runCli(cliEnv, ['config', 'apply', '-f', path])
      assert.equal(apply.code, 0, apply.stderr)
      assert.ok(!apply.stdout.includes(value) && !apply.stdout.includes(ref.ciphertext))
      const deadline = Date.now() + 5000
      let seen: unknown
      while (Date.now() < deadline) {
        const res = await request(`${rk.proxyUrl}/proxy/kyc/applicants/2`, { headers: { 'x-relaykey': key } })
        await res.body.text()
        seen = partner.received.at(-1)!.headers['x-app-token']
        if (seen === value) break
        await sleep(100)
      }
      assert.equal(seen, value)
      assert.equal((await runCli(cliEnv, ['config', 'diff', '-f', path])).code, 0)
      // the export keeps it by digest, and applies back as no change
      const exported = await runCli(cliEnv, ['config', 'export'])
      assert.match(exported.stdout, /provider: inline\n\s+sealed: [0-9a-f]{16}/)
      assert.equal((await runCli(cliEnv, ['config', 'diff', '-f', file(`${mode}-export2.yaml`, exported.stdout)])).code, 0)
      const resealed = await runCli({ RELAYKEY_MASTER_KEY: masterKey }, ['config', 'seal'], value)
      const changed = await runCli(cliEnv, ['config', 'diff', '-f', file(`${mode}-resealed.yaml`, relaykeyYaml(partner.url, { weight: 3, monthly: 2000, sealed: resealed.stdout.trim() }))])
      assert.equal(changed.code, 3)
      assert.match(changed.stdout, /^~ credential kyc\/prod\n {4}secret: \{"provider":"inline","sealed":"[0-9a-f]{16}"\} → \{"provider":"inline","sealed":"[0-9a-f]{16}"\}$/m)
    })

    it('--prune deletes what the file no longer has, and refuses to delete a policy keys use, naming them', async () => {
      const smaller = file(`${mode}-smaller.yaml`, relaykeyYaml(partner.url, { monthly: 2000, withLedger: false }))
      const diff = await runCli(cliEnv, ['config', 'diff', '-f', smaller])
      assert.match(diff.stdout, /^= partner ledger \(not in the file: kept; --prune deletes it\)$/m)
      const pruned = await runCli(cliEnv, ['config', 'apply', '-f', smaller, '--prune'])
      assert.equal(pruned.code, 0, pruned.stderr)
      assert.match(pruned.stdout, /^- binding ledger-read → ledger$/m)
      assert.match(pruned.stdout, /^- partner ledger$/m)
      assert.equal((await rk.admin('GET', '/admin/partners/ledger')).status, 404)
      assert.equal((await runCli(cliEnv, ['config', 'diff', '-f', smaller, '--prune'])).code, 0)
      // a file without the policy the issued key uses
      const withoutPolicy = file(`${mode}-nopolicy.yaml`, `partners:\n  - slug: kyc\n    base_urls: { production: ${partner.url}/kyc }\n    auth: { type: header, name: X-App-Token }\n`)
      const refused = await runCli(cliEnv, ['config', 'apply', '-f', withoutPolicy, '--prune'])
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, /--prune would delete policy 'kyc-standard', which 1 key\(s\) still use: 'checkout-service' \(key_/)
      assert.equal((await rk.admin('GET', '/admin/policies/kyc-standard')).status, 200, 'nothing was deleted')
      assert.equal((await rk.admin('GET', '/admin/partners/kyc/credentials')).body.length, 1)
    })

    it('refuses a bad file with its file, line and field, and changes nothing', async () => {
      const cases: Array<[string, string, RegExp]> = [
        ['syntax', 'partners:\n  - slug: x\n   base_urls: [\n', /syntax\.yaml:3: not valid YAML or JSON/],
        ['unknown-field', `partners:\n  - slug: x\n    base_urls: { production: ${partner.url} }\n    auth: { type: bearer }\n    retries: 3\n`, /unknown-field\.yaml:5: partners\[0\]\.retries: unknown field/],
        ['missing-partner', 'policies:\n  - name: p\nbindings:\n  - policy: p\n    partner: nobody\n', /missing-partner\.yaml:5: bindings\[0\]\.partner: no partner 'nobody' in this file/],
        ['secret-value', `partners:\n  - slug: x\n    base_urls: { production: ${partner.url} }\n    auth: { type: bearer }\ncredentials:\n  - partner: x\n    name: a\n    environment: production\n    secret: { provider: inline, value: sk_live_1 }\n`, /secret-value\.yaml:9: credentials\[0\]\.secret\.value: a config file holds no secret values/],
      ]
      for (const [name, text, expected] of cases) {
        const run = await runCli(cliEnv, ['config', 'apply', '-f', file(`${name}.yaml`, text)])
        assert.equal(run.code, 1, `${name}: ${run.stdout}`)
        assert.match(run.stderr, expected)
        assert.equal(run.stdout, '')
      }
      assert.equal((await rk.admin('GET', '/admin/partners/x')).status, 404)
    })
  })
}

describe('an embedded node started from RELAYKEY_CONFIG, reloaded with SIGHUP', () => {
  let partner: MockPartner
  let rk: RelayKeyProcess
  let path: string

  before(async () => {
    partner = await startMockPartner()
    path = file('embedded-source.yaml', relaykeyYaml(partner.url, { withLedger: false }))
    rk = await startRelayKey({ workers: 2, env: { RELAYKEY_CONFIG: path, KYC_TOKEN: 'kyc-token-value' } })
  })
  after(async () => {
    assert.equal(await rk.stop(), 0)
    await partner.close()
  })

  const newKey = async (): Promise<string> => {
    const res = await rk.admin('POST', '/admin/keys', { name: `k-${randomBytes(3).toString('hex')}`, policy: 'kyc-standard', environment: 'production' })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return res.body.key
  }

  it('serves the file\'s configuration from the start, and leaves its keys to config apply', async () => {
    assert.equal((await rk.admin('GET', '/admin/policies/kyc-standard')).body.budget.monthly, 1000)
    assert.equal((await rk.admin('GET', '/admin/keys')).body.length, 0, 'no key issued by the node')
    assert.match(rk.output(), /keys in the config file are issued by `relaykey config apply`/)
    // the change log says the file made these changes, under a token name of its own
    const byFile = (await rk.admin('GET', '/admin/changes?limit=1000')).body.changes
    assert.ok(byFile.length >= 4, JSON.stringify(byFile))
    assert.deepEqual(new Set(byFile.map((c: any) => c.token_name)), new Set(['config-file']))
    const res = await request(`${rk.proxyUrl}/proxy/kyc/applicants/1`, { headers: { 'x-relaykey': await newKey() } })
    assert.equal(res.statusCode, 200, await res.body.text())
  })

  it('keeps the configuration in force when a reloaded file is bad, naming file, line and field', async () => {
    writeFileSync(path, relaykeyYaml(partner.url, { withLedger: false }).replace('budget: { monthly: 1000 }', 'budget: { monthly: -5 }'))
    const logged = rk.output().length
    rk.child.kill('SIGHUP')
    const deadline = Date.now() + 5000
    while (!rk.output().slice(logged).includes('config file refused') && Date.now() < deadline) await sleep(50)
    const line = rk.output().slice(logged).split('\n').find((l) => l.includes('config file refused'))
    assert.ok(line !== undefined, rk.output().slice(logged))
    assert.match(line, /"line":13,"field":"policies\[0\]\.budget\.monthly"/)
    assert.equal((await rk.admin('GET', '/admin/policies/kyc-standard')).body.budget.monthly, 1000)
  })

  it('applies a changed file on SIGHUP while a steady stream of requests drops none', async () => {
    const keys = [await newKey(), await newKey()]
    let stop = false
    const answers: number[] = []
    const loop = async (key: string): Promise<void> => {
      while (!stop) {
        const res = await request(`${rk.proxyUrl}/proxy/kyc/applicants/9`, { headers: { 'x-relaykey': key } })
        await res.body.text()
        answers.push(res.statusCode)
      }
    }
    const loops = [...keys, ...keys, ...keys].map(loop)
    await sleep(500)
    writeFileSync(path, relaykeyYaml(partner.url, { withLedger: false, monthly: 5000 }))
    rk.child.kill('SIGHUP')
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && (await rk.admin('GET', '/admin/policies/kyc-standard')).body.budget.monthly !== 5000) await sleep(50)
    await sleep(500)
    stop = true
    await Promise.all(loops)
    assert.equal((await rk.admin('GET', '/admin/policies/kyc-standard')).body.budget.monthly, 5000)
    assert.ok(answers.length > 50, `${answers.length} requests`)
    assert.deepEqual([...new Set(answers)], [200], 'every request of the stream was answered 200')
  })

  it('refuses to start from a bad file, naming file, line and field', async () => {
    const bad = file('embedded-bad.yaml', 'partners:\n  - slug: Bad Slug\n    base_urls: { production: http://127.0.0.1:9 }\n    auth: { type: bearer }\n')
    await assert.rejects(startRelayKey({ workers: 1, env: { RELAYKEY_CONFIG: bad }, timeoutMs: 10_000 }),
      /relaykey exited with 2:[\s\S]*embedded-bad\.yaml:2: partners\[0\]\.slug: must be/)
  })
})

describe('config apply converges where the node needs an order, and never re-issues a revoked key', () => {
  let rk: RelayKeyProcess
  let env: Record<string, string>
  const apply = async (name: string, text: string, prune = true): Promise<Run> => runCli(env, ['config', 'apply', '-f', file(name, text), ...(prune ? ['--prune'] : [])])
  const diff = async (name: string, text: string): Promise<Run> => runCli(env, ['config', 'diff', '-f', file(name, text), '--prune'])

  before(async () => {
    rk = await startRelayKey({ workers: 1 })
    env = { RELAYKEY_DATA_DIR: rk.dataDir, RELAYKEY_ADMIN_URL: rk.adminUrl }
  })
  after(async () => { assert.equal(await rk.stop(), 0) })

  /** apply, then nothing left to do */
  const converges = async (name: string, text: string): Promise<void> => {
    const applied = await apply(`${name}.yaml`, text)
    assert.equal(applied.code, 0, applied.stdout + applied.stderr)
    const left = await diff(`${name}-again.yaml`, text)
    assert.equal(left.code, 0, `${name}: ${left.stdout}`)
  }

  it('partial retry and circuit_breaker blocks, an environment dropped with its credential, an auth change dropping a part, a policy setting back to its default', async () => {
    const partner = (extra: string, envs = 'sandbox: https://sb.vendor.test, production: https://api.vendor.test', auth = '{ type: hmac, preset: sumsub }') =>
      `partners:\n  - slug: vendor\n    base_urls: { ${envs} }\n    auth: ${auth}\n${extra}`
    const hmacCredentials = 'credentials:\n  - { partner: vendor, name: prod, environment: production, secret: { provider: env, ref: A }, signing_secret: { provider: env, ref: B } }\n' +
      '  - { partner: vendor, name: sb, environment: sandbox, secret: { provider: env, ref: A }, signing_secret: { provider: env, ref: B } }\n'
    const policy = (extra: string) => `policies:\n  - name: p\n${extra}bindings:\n  - { policy: p, partner: vendor, credentials: [prod] }\n`
    await converges('start', partner('    retry: { max_attempts: 3, on_status: [503] }\n    circuit_breaker: { max_in_flight: 50 }\n') + hmacCredentials + policy('    on_governance_failure: allow\n'))
    // defaults back where the file no longer says otherwise
    await converges('partial', partner('    retry: { max_attempts: 3 }\n    circuit_breaker: { failure_threshold: 9 }\n') + hmacCredentials + policy(''))
    assert.deepEqual((await rk.admin('GET', '/admin/partners/vendor')).body.retry.on_status, [502, 503, 504])
    assert.equal((await rk.admin('GET', '/admin/policies/p')).body.on_governance_failure, 'deny')
    // the sandbox environment and its credential go; hmac becomes bearer and the signing secret goes
    const bearer = partner('', 'production: https://api.vendor.test', '{ type: bearer }') +
      'credentials:\n  - { partner: vendor, name: prod, environment: production, secret: { provider: env, ref: A } }\n' + policy('')
    await converges('bearer', bearer)
    const credentials = (await rk.admin('GET', '/admin/partners/vendor/credentials')).body
    assert.deepEqual(credentials.map((c: { name: string; signing_secret?: unknown }) => [c.name, c.signing_secret ?? null]), [['prod', null]])
  })

  it('refuses a credential moved to another environment with the file\'s line, and diffs a sealed value the node no longer holds', async () => {
    const text = 'partners:\n  - slug: two\n    base_urls: { sandbox: https://sb.two.test, production: https://api.two.test }\n    auth: { type: bearer }\n' +
      'credentials:\n  - partner: two\n    name: main\n    environment: ENV\n    secret: { provider: env, ref: A }\n'
    await converges('two', text.replace('ENV', 'sandbox'))
    const moved = await diff('two-moved.yaml', text.replace('ENV', 'production'))
    assert.equal(moved.code, 1)
    assert.match(moved.stderr, /two-moved\.yaml:8: credentials\[0\]\.environment: credential 'main' of partner 'two' is in sandbox on the node/)
    // a file that keeps a sealed value by a digest the node does not hold: a change to see, not to apply
    const kept = text.replace('ENV', 'sandbox').replace('{ provider: env, ref: A }', '{ provider: inline, sealed: 0123456789abcdef }')
    const drift = await diff('two-drift.yaml', kept)
    assert.equal(drift.code, 3, drift.stderr)
    assert.match(drift.stdout, /^~ credential two\/main\n {4}secret: \{"provider":"env","ref":"A"\} → \{"provider":"inline","sealed":"0123456789abcdef"\}$/m)
    const refused = await apply('two-drift-apply.yaml', kept)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /apply stopped at ~ credential two\/main: credential two\/main: secret keeps a sealed value by its digest/)
  })

  it('issues a key once, and does not issue it again after it was revoked', async () => {
    const text = 'policies:\n  - name: kp\nkeys:\n  - { name: batch-job, policy: kp, environment: production }\n'
    const first = await apply('key.yaml', text, false)
    assert.match(first.stdout, /key batch-job \(key_/)
    const id = (await rk.admin('GET', '/admin/keys')).body.find((k: { name: string }) => k.name === 'batch-job').id
    assert.equal((await rk.admin('POST', `/admin/keys/${id}/revoke`)).status, 200)
    const again = await apply('key-again.yaml', text, false)
    assert.equal(again.code, 0)
    assert.equal(again.stdout.trim(), 'no changes')
  })
})
