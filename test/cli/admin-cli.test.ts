// The admin CLI run as an operator runs it — `node dist/src/cli.js <command>` in a process of its
// own with only the environment given — against a real node in each mode: embedded (the token
// found in RELAYKEY_DATA_DIR's admin-token file) and distributed (RELAYKEY_ADMIN_URL and
// RELAYKEY_ADMIN_TOKEN). Checks stdout, stderr and exit codes: keys create/list/show/revoke/
// rotate with the keys then used on the proxy, usage and audit tail after real requests, audit
// tail --follow until SIGTERM, the list commands, and the usage errors.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'

const CLI = new URL('../../src/cli.js', import.meta.url).pathname
const PACKAGE = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
/** a working directory without a .env, so only the environment given counts */
const CWD = mkdtempSync(join(tmpdir(), 'relaykey-cli-'))
process.on('exit', () => rmSync(CWD, { recursive: true, force: true }))

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

function start (args: string[], env: Record<string, string>): { child: ChildProcess; stdout: () => string; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, cwd: CWD, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer)
    resolve({ code, signal, stdout, stderr })
  }))
  return { child, stdout: () => stdout, done }
}

async function cli (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return await start(args, env).done
}

/** a successful run's stdout; anything else fails the test with what the CLI said */
async function ok (args: string[], env: Record<string, string>): Promise<string> {
  const run = await cli(args, env)
  assert.equal(run.code, 0, `relaykey ${args.join(' ')} → ${run.code}\n${run.stderr}`)
  assert.equal(run.stderr, '')
  return run.stdout
}

/** a failed run: its code, `relaykey: <message>` on stderr, nothing on stdout */
async function fails (args: string[], env: Record<string, string>, code: number, message: RegExp): Promise<void> {
  const run = await cli(args, env)
  assert.equal(run.code, code, `relaykey ${args.join(' ')} → ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`)
  assert.equal(run.stdout, '')
  assert.match(run.stderr, /^relaykey: /)
  assert.match(run.stderr, message)
}

async function until<T> (what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

/** the status and error code the proxy answers a GET with */
async function callProxy (rk: RelayKeyProcess, key: string, path: string): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(`${rk.proxyUrl}/proxy/acme${path}`, { headers: { 'x-relaykey': key } })
  const body = await res.json() as { error?: { code: string } }
  return { status: res.status, code: body.error?.code }
}

const NDJSON = (text: string): any[] => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l))

const ADMIN_COMMANDS: Array<[string[], string]> = [
  [['keys', 'create'], 'usage: relaykey keys create --name NAME --policy POLICY --environment ENV'],
  [['keys', 'list'], 'usage: relaykey keys list'],
  [['keys', 'show'], 'usage: relaykey keys show KEY_ID'],
  [['keys', 'revoke'], 'usage: relaykey keys revoke KEY_ID'],
  [['keys', 'rotate'], 'usage: relaykey keys rotate KEY_ID'],
  [['usage'], 'usage: relaykey usage'],
  [['audit', 'tail'], 'usage: relaykey audit tail'],
  [['partners', 'list'], 'usage: relaykey partners list'],
  [['policies', 'list'], 'usage: relaykey policies list'],
  [['credentials', 'list'], 'usage: relaykey credentials list --partner SLUG'],
  [['changes', 'list'], 'usage: relaykey changes list'],
]

describe('relaykey command line, without a node', () => {
  it('--version prints the package version', async () => {
    assert.equal((await ok(['--version'], {})).trim(), PACKAGE.version)
  })

  it('-h lists every admin command', async () => {
    const out = await ok(['-h'], {})
    for (const [words] of ADMIN_COMMANDS) assert.match(out, new RegExp(`^  ${words.join(' ')} `, 'm'))
  })

  it('--help on every admin command prints its usage line, options and an example, exit 0', async () => {
    await Promise.all(ADMIN_COMMANDS.map(async ([words, usage]) => {
      const out = await ok([...words, '--help'], {})
      assert.ok(out.startsWith(usage), `${words.join(' ')} --help: ${out}`)
      assert.match(out, /Options:\n/)
      assert.match(out, /Example:\n {2}relaykey /)
    }))
    assert.ok((await ok(['keys', 'rotate', 'key_x', '-h'], {})).startsWith('usage: relaykey keys rotate KEY_ID'))
  })

  it('an unknown command, or a group without its command, is exit 2 and starts no server', async () => {
    await Promise.all([['frobnicate'], ['keys'], ['keys', 'delete', 'key_x'], ['--bogus'], ['audit']].map(async (args) => {
      const run = await cli(args, { RELAYKEY_DATA_DIR: CWD })
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.equal(run.stdout, '')
      assert.match(run.stderr, /^relaykey: .*(unknown command|is not a command)/)
    }))
  })

  it('a bad command line is exit 2 naming the flag, before any node is asked', async () => {
    // no node runs at this URL: each refusal comes from the command line alone
    const env = { RELAYKEY_ADMIN_TOKEN: 'x'.repeat(24), RELAYKEY_ADMIN_URL: 'http://127.0.0.1:9' }
    await Promise.all([
      fails(['keys', 'list', '--bogus'], env, 2, /'--bogus'/),
      fails(['audit', 'tail', '--folow'], env, 2, /'--folow'/),
      fails(['partners', 'list', 'extra'], env, 2, /unexpected argument 'extra'/i),
      fails(['keys', 'create', '--name'], env, 2, /'--name <value>' argument missing/),
      fails(['keys', 'create', '--name', 'x', '--policy', 'p'], env, 2, /--environment: required/),
      fails(['keys', 'show'], env, 2, /key id: required/),
      fails(['keys', 'show', 'key_a', 'key_b'], env, 2, /unexpected argument 'key_b'/i),
      fails(['keys', 'rotate', 'key_a', '--grace-seconds', 'soon'], env, 2, /--grace-seconds: must be a whole number from 0 to 2592000/),
      fails(['usage', '--month', '2026-13'], env, 2, /--month: must be YYYY-MM/),
      fails(['audit', 'tail', '--limit', '0'], env, 2, /--limit: must be a whole number from 1 to 1000/),
      fails(['credentials', 'list'], env, 2, /--partner: required/),
      fails(['policies', 'list', '--json=yes'], env, 2, /--json/),
    ])
  })

  it('without a token anywhere: exit 2 saying where the token comes from', async () => {
    await fails(['keys', 'list'], { RELAYKEY_DATA_DIR: CWD, RELAYKEY_ADMIN_URL: 'http://127.0.0.1:9' }, 2, /RELAYKEY_ADMIN_TOKEN/)
  })

  it('a node that does not answer: exit 1 naming the URL', async () => {
    await fails(['partners', 'list'], { RELAYKEY_ADMIN_TOKEN: 'x'.repeat(24), RELAYKEY_ADMIN_URL: 'http://127.0.0.1:9' }, 1, /cannot reach the admin API at http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/)
  })
})

interface Node {
  mode: 'embedded' | 'distributed'
  rk: RelayKeyProcess
  db: TestDatabase | null
  partner: MockPartner
  setup: GovernedSetup
  /** what the CLI is given to find the node and its token */
  env: Record<string, string>
  /** every check (embedded), or those that depend on the node (distributed) */
  full: boolean
}

/** the partner's credential: a value in the node's environment, which no list may show */
const UPSTREAM_SECRET = 'upstream-secret-value-1f6d'

async function startNode (mode: Node['mode']): Promise<Node> {
  const partner = await startMockPartner()
  let db: TestDatabase | null = null
  let rk: RelayKeyProcess | null = null
  try {
    if (mode === 'distributed') db = await createTestDatabase()
    const secretEnv = { ACME_UPSTREAM_TOKEN: UPSTREAM_SECRET }
    rk = await startRelayKey({ workers: 1, env: db === null ? secretEnv : distributedEnv(db.url, { extra: secretEnv }) })
    const env: Record<string, string> = mode === 'embedded'
      // the port is a test's own, so the URL is given; the token comes from the data dir
      ? { RELAYKEY_ADMIN_URL: rk.adminUrl, RELAYKEY_DATA_DIR: rk.dataDir }
      : { RELAYKEY_ADMIN_URL: rk.adminUrl, RELAYKEY_ADMIN_TOKEN: rk.adminToken }
    const setup = await setUpGovernedPartner(rk, { slug: 'acme', baseUrl: partner.url, customer: 'acme-bank', secret: { provider: 'env', ref: 'ACME_UPSTREAM_TOKEN' } })
    return { mode, rk, db, partner, setup, env, full: mode === 'embedded' }
  } catch (err) {
    await rk?.stop()
    await db?.drop()
    await partner.close()
    throw err
  }
}

// Each test runs against both nodes at once, an embedded one and a distributed one: the time
// goes to starting CLI processes, and side by side the two modes take about as long as one.
describe('relaykey admin commands against a node in each mode', () => {
  const nodes: Node[] = []

  before(async () => {
    const started = await Promise.allSettled((['embedded', 'distributed'] as const).map(startNode))
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value)
    for (const s of started) if (s.status === 'rejected') throw s.reason
  })

  after(async () => {
    await Promise.all(nodes.map(async (n) => {
      await n.rk.stop()
      await n.db?.drop()
      await n.partner.close()
    }))
  })

  /**
   * The test, in both modes side by side; a failure names its mode. Checks of how the CLI
   * prints (the same code in either mode) run against the embedded node only (`n.full`).
   */
  function each (name: string, body: (n: Node) => Promise<void>): void {
    it(name, async () => {
      assert.equal(nodes.length, 2)
      await Promise.all(nodes.map(async (n) => {
        try {
          await body(n)
        } catch (err) {
          if (err instanceof Error) err.message = `${n.mode} mode: ${err.message}`
          throw err
        }
      }))
    })
  }

  /** `keys create` (table) for the test partner's policy: the id and the raw key printed */
  async function createKey (n: Node, name: string, extra: string[] = []): Promise<{ id: string; key: string; out: string }> {
    const out = await ok(['keys', 'create', '--name', name, '--policy', n.setup.policyId, '--environment', 'production', ...extra], n.env)
    const row = /^(key_\S+)\s+(.+?)\s+(vk_[A-Za-z0-9_-]+)$/m.exec(out)
    assert.ok(row !== null, out)
    assert.equal(row[2], name)
    return { id: row[1]!, key: row[3]!, out }
  }

  /** a key issued through the API directly, for the tests about other commands */
  async function issueKey (n: Node, name: string, customer?: string): Promise<{ id: string; key: string }> {
    const res = await n.rk.admin('POST', '/admin/keys', { name, policy: n.setup.policyId, environment: 'production', ...(customer === undefined ? {} : { customer }) })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return { id: res.body.id, key: res.body.key }
  }

  each('keys create prints a vk_ key once, and the key works through the proxy', async (n) => {
    const { id, key, out } = await createKey(n, 'cli-created', ['--customer', 'acme-bank', '--team', 'onboarding', '--expires-at', '2099-01-31T00:00:00Z'])
    assert.match(out, /^ID\s+NAME\s+KEY$/m)
    assert.match(out, /shown only once/)
    assert.deepEqual(await callProxy(n.rk, key, '/applicants/1'), { status: 200, code: undefined })
    const stored = (await n.rk.admin('GET', `/admin/keys/${id}`)).body
    assert.equal(stored.customer, 'acme-bank')
    assert.equal(stored.team, 'onboarding')
    assert.equal(stored.expires_at, '2099-01-31T00:00:00.000Z')
    assert.equal(stored.prefix, key.slice(0, 11))
  })

  each('keys create --json prints the API object, key included', async (n) => {
    const created = JSON.parse(await ok(['keys', 'create', '--name', 'cli-json', '--policy', n.setup.policyId, '--environment', 'production', '--json'], n.env))
    assert.match(created.key, /^vk_/)
    assert.equal(created.status, 'active')
    assert.equal(created.policy_id, n.setup.policyId)
  })

  each('keys create: a refused field is exit 1 naming it', async (n) => {
    await fails(['keys', 'create', '--name', 'x', '--policy', 'no-such-policy', '--environment', 'production'], n.env, 1, /policy: no policy has this id or name/)
    if (n.full) await fails(['keys', 'create', '--name', 'x', '--policy', n.setup.policyId, '--environment', 'production', '--expires-at', '2020-01-01T00:00:00Z'], n.env, 1, /expires_at: must be in the future/)
  })

  each('keys list: a table, and --json the API array', async (n) => {
    const { id } = await issueKey(n, 'cli-listed', 'acme-bank')
    const table = await ok(['keys', 'list'], n.env)
    assert.match(table, /^ID\s+NAME\s+STATUS\s+POLICY\s+ENVIRONMENT\s+CUSTOMER\s+PREFIX\s+EXPIRES$/m)
    assert.match(table, new RegExp(`^${id}\\s+cli-listed\\s+active\\s+acme-policy-\\S+\\s+production\\s+acme-bank\\s+vk_\\S{8}\\s+-$`, 'm'))
    const keys = JSON.parse(await ok(['keys', 'list', '--json'], n.env)) as Array<{ id: string; key?: string }>
    assert.ok(keys.some((k) => k.id === id))
    assert.ok(keys.every((k) => k.key === undefined))
    if (n.full) assert.deepEqual(JSON.parse(await ok(['keys', 'list', '--customer', 'nobody', '--json'], n.env)), [])
  })

  each('keys show: the fields of one key; --json its object; a missing id is exit 4', async (n) => {
    const { id } = await issueKey(n, 'cli-shown')
    const [table, json] = await Promise.all([
      ok(['keys', 'show', id], n.env),
      n.full ? ok(['keys', 'show', id, '--json'], n.env) : JSON.stringify({ id, name: 'cli-shown' }),
      fails(['keys', 'show', 'key_doesnotexist00'], n.env, 4, /key 'key_doesnotexist00' not found/),
    ])
    assert.match(table, new RegExp(`^id\\s+${id}$`, 'm'))
    assert.match(table, /^status\s+active$/m)
    assert.match(table, new RegExp(`^policy\\s+acme-policy-\\S+ \\(${n.setup.policyId}\\)$`, 'm'))
    const shown = JSON.parse(json)
    assert.equal(shown.id, id)
    assert.equal(shown.name, 'cli-shown')
  })

  each('keys revoke: the key then gets 401 key_revoked', async (n) => {
    const { id, key } = await issueKey(n, 'cli-revoked')
    assert.equal((await callProxy(n.rk, key, '/a')).status, 200)
    const out = await ok(['keys', 'revoke', id], n.env)
    assert.match(out, /^status\s+revoked$/m)
    await until('the key refused', async () => {
      const answer = await callProxy(n.rk, key, '/a')
      return answer.code === 'key_revoked' ? answer : undefined
    })
    if (n.full) assert.equal(JSON.parse(await ok(['keys', 'revoke', id, '--json'], n.env)).status, 'revoked')
    await fails(['keys', 'rotate', id], n.env, 1, /409 conflict: key: .* was revoked/)
  })

  each('keys rotate prints a new key that works; the old one stops (no grace)', async (n) => {
    const { id, key: old } = await issueKey(n, 'cli-rotated')
    assert.equal((await callProxy(n.rk, old, '/a')).status, 200)
    const out = await ok(['keys', 'rotate', id], n.env)
    assert.match(out, /shown only once/)
    const fresh = new RegExp(`^${id}\\s+cli-rotated\\s+(vk_[A-Za-z0-9_-]+)$`, 'm').exec(out)?.[1]
    assert.ok(fresh !== undefined && fresh !== old, out)
    await until('the new key forwarded', async () => ((await callProxy(n.rk, fresh, '/a')).status === 200 ? true : undefined))
    await until('the old key refused', async () => ((await callProxy(n.rk, old, '/a')).code === 'key_expired' ? true : undefined))

    const graced = JSON.parse(await ok(['keys', 'rotate', id, '--grace-seconds', '60', '--json'], n.env))
    assert.match(graced.key, /^vk_/)
    await until('the newest key forwarded', async () => ((await callProxy(n.rk, graced.key, '/a')).status === 200 ? true : undefined))
    assert.equal((await callProxy(n.rk, fresh, '/a')).status, 200, 'the previous key works during its grace period')
  })

  each('usage: after requests, --json numbers match and the table sums them', async (n) => {
    const { id, key } = await issueKey(n, 'cli-usage', 'usage-co')
    for (let i = 0; i < 3; i++) assert.equal((await callProxy(n.rk, key, `/usage/${i}`)).status, 200)
    assert.equal((await n.rk.admin('POST', `/admin/keys/${id}/revoke`)).status, 200)
    // revocation reaches the worker within a second; a request in between is still forwarded
    const after: number[] = []
    await until('the revoked request refused', async () => {
      const answer = await callProxy(n.rk, key, '/usage/x')
      after.push(answer.status)
      return answer.code === 'key_revoked' ? true : undefined
    })
    const forwarded = 3 + after.filter((s) => s === 200).length
    const revoked = after.filter((s) => s === 401).length
    await until('every request counted', async () => ((await n.rk.admin('GET', `/admin/usage?key_id=${id}`)).body.requests >= 3 + after.length ? true : undefined))
    const usage = JSON.parse(await ok(['usage', '--key', id, '--json'], n.env))
    assert.equal(usage.key_id, id)
    assert.match(usage.month, /^\d{4}-\d{2}$/)
    assert.equal(usage.requests, 3 + after.length)
    assert.equal(usage.forwarded, forwarded)
    assert.deepEqual(usage.blocked, { key_revoked: revoked })
    assert.equal(usage.cost, forwarded)

    const [table, empty, customer] = await Promise.all([
      n.full ? ok(['usage', '--key', id], n.env) : null,
      n.full ? ok(['usage', '--key', id, '--month', '2001-01', '--json'], n.env).then((o) => JSON.parse(o)) : null,
      ok(['usage', '--customer', 'usage-co', '--partner', 'acme', '--json'], n.env).then((o) => JSON.parse(o)),
      fails(['usage', '--key', 'key_doesnotexist00'], n.env, 4, /not found/),
    ])
    if (table !== null) {
      assert.match(table, new RegExp(`^Usage in ${usage.month} \\(UTC\\) of key ${id}$`, 'm'))
      assert.match(table, new RegExp(`^forwarded\\s+${forwarded}$`, 'm'))
      assert.match(table, new RegExp(`^key_revoked\\s+${usage.blocked.key_revoked}$`, 'm'))
      assert.match(table, new RegExp(`^total\\s+${usage.requests}$`, 'm'))
      assert.match(table, new RegExp(`^cost\\s+${forwarded} units$`, 'm'))
      assert.match(table, new RegExp(`^bytes out\\s+${usage.bytes_out}$`, 'm'))
    }
    if (empty !== null) {
      assert.equal(empty.month, '2001-01')
      assert.equal(empty.requests, 0)
    }
    // the customer's only key, all to one partner: the same numbers
    assert.deepEqual({ ...customer, key_id: id, customer: null, partner: null }, usage)
  })

  each('audit tail: the latest events oldest first; --json one parseable line each', async (n) => {
    const { id, key } = await issueKey(n, 'cli-audit')
    for (let i = 0; i < 5; i++) assert.equal((await callProxy(n.rk, key, `/audit/${i}`)).status, 200)
    await until('5 events recorded', async () => ((await n.rk.admin('GET', `/admin/audit?key_id=${id}`)).body.events.length >= 5 ? true : undefined))
    const all = NDJSON(await ok(['audit', 'tail', '--key', id, '--json'], n.env))
    assert.equal(all.length, 5)
    assert.deepEqual(all.map((e) => e.path), ['/audit/0', '/audit/1', '/audit/2', '/audit/3', '/audit/4'])
    assert.ok(all.every((e) => e.key_id === id && e.outcome === 'forwarded' && e.status === 200))

    const [latestOut, tableOut, noneOut] = await Promise.all([
      ok(['audit', 'tail', '--key', id, '--limit', '2', '--json'], n.env),
      n.full ? ok(['audit', 'tail', '--key', id, '--limit', '3'], n.env) : null,
      n.full ? ok(['audit', 'tail', '--key', id, '--outcome', 'rate_limited', '--json'], n.env) : null,
    ])
    const latest = NDJSON(latestOut)
    assert.deepEqual(latest.map((e) => e.path), ['/audit/3', '/audit/4'])

    if (tableOut !== null) {
      const table = tableOut.trimEnd().split('\n')
      assert.match(table[0]!, /^TIME\s+REQUEST ID\s+KEY\s+PARTNER\s+METHOD\s+PATH\s+STATUS\s+OUTCOME\s+COST\s+LATENCY$/)
      assert.equal(table.length, 4)
      assert.match(table[3]!, new RegExp(`^\\S+Z\\s+[0-9a-f-]{36}\\s+${id}\\s+acme\\s+GET\\s+/audit/4\\s+200\\s+forwarded\\s+1\\s+\\d+ms$`))
    }
    if (noneOut !== null) assert.deepEqual(NDJSON(noneOut), [])
  })

  each('audit tail --follow prints an event made after it started, then exits 0 on SIGTERM', async (n) => {
    const { id, key } = await issueKey(n, 'cli-follow')
    assert.equal((await callProxy(n.rk, key, '/before')).status, 200)
    await until('the first event recorded', async () => ((await n.rk.admin('GET', `/admin/audit?key_id=${id}`)).body.events.length === 1 ? true : undefined))
    const tail = start(['audit', 'tail', '--key', id, '--follow', '--json'], n.env)
    try {
      await until('the first event printed', async () => (tail.stdout().includes('"/before"') ? true : undefined))
      assert.equal((await callProxy(n.rk, key, '/after/1')).status, 200)
      assert.equal((await callProxy(n.rk, key, '/after/2')).status, 200)
      await until('the new events printed', async () => (tail.stdout().includes('"/after/2"') ? true : undefined))
      await sleep(1200) // another poll or so: nothing printed twice
    } finally {
      tail.child.kill('SIGTERM')
    }
    const run = await tail.done
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.signal, null)
    assert.equal(run.stderr, '')
    assert.deepEqual(NDJSON(run.stdout).map((e) => e.path), ['/before', '/after/1', '/after/2'])
  })

  each('audit tail --follow as a table: the headings once, then rows', async (n) => {
    const { id, key } = await issueKey(n, 'cli-follow-table')
    const tail = start(['audit', 'tail', '--key', id, '-f'], n.env)
    try {
      await until('the headings printed', async () => (tail.stdout().startsWith('TIME') ? true : undefined))
      await sleep(300)
      assert.equal((await callProxy(n.rk, key, '/followed')).status, 200)
      await until('the new event printed', async () => (tail.stdout().includes('/followed') ? true : undefined))
    } finally {
      tail.child.kill('SIGINT')
    }
    const run = await tail.done
    assert.equal(run.code, 0, run.stderr)
    const lines = run.stdout.trimEnd().split('\n')
    assert.equal(lines.length, 2, run.stdout)
    assert.match(lines[1]!, new RegExp(`\\s${id}\\s+acme\\s+GET\\s+/followed\\s+200\\s+forwarded\\s`))
  })

  each('partners, policies and credentials list: tables and --json, never a secret', async (n) => {
    const [partners, partnersJson, policies, policiesJson, credentials, json] = await Promise.all([
      ok(['partners', 'list'], n.env),
      n.full ? ok(['partners', 'list', '--json'], n.env) : null,
      ok(['policies', 'list'], n.env),
      n.full ? ok(['policies', 'list', '--json'], n.env) : null,
      ok(['credentials', 'list', '--partner', 'acme'], n.env),
      ok(['credentials', 'list', '--partner', 'acme', '--json'], n.env),
      fails(['credentials', 'list', '--partner', 'nope'], n.env, 4, /partner 'nope' not found/),
    ])
    assert.match(partners, /^SLUG\s+ID\s+AUTH\s+BASE URLS\s+CREATED$/m)
    assert.match(partners, new RegExp(`^acme\\s+${n.setup.partnerId}\\s+header\\s+production=${n.partner.url}\\s`, 'm'))
    if (partnersJson !== null) assert.deepEqual(JSON.parse(partnersJson).map((p: { slug: string }) => p.slug), ['acme'])

    assert.match(policies, new RegExp(`^acme-policy-\\S+\\s+${n.setup.policyId}\\s+everything\\s`, 'm'))
    if (policiesJson !== null) assert.deepEqual(JSON.parse(policiesJson).map((p: { id: string }) => p.id), [n.setup.policyId])

    assert.match(credentials, /^NAME\s+ID\s+ENVIRONMENT\s+WEIGHT\s+RATE LIMIT\s+SECRET$/m)
    assert.match(credentials, new RegExp(`^main\\s+${n.setup.credentialId}\\s+production\\s+1\\s+-\\s+secret=env:ACME_UPSTREAM_TOKEN$`, 'm'))
    assert.equal(JSON.parse(json)[0].id, n.setup.credentialId)
    for (const out of [credentials, json]) assert.ok(!out.includes(UPSTREAM_SECRET))
  })

  each('changes list: who changed what, newest first; --json the API page; filters', async (n) => {
    const created = await createKey(n, 'audited-key')
    await ok(['keys', 'revoke', created.id], n.env)
    const table = await ok(['changes', 'list', '--resource-id', created.id], n.env)
    const rows = table.trim().split('\n')
    assert.match(rows[0]!, /^SEQ\s+TIME\s+TOKEN\s+ACTION\s+RESOURCE\s+FIELDS$/)
    // ids may end in '-' or '_': matched up to the spaces after them
    assert.match(rows[1]!, new RegExp(`\\badmin\\s+revoke\\s+key ${created.id}\\s+.*\\brevoked_at\\b`))
    assert.match(rows[2]!, new RegExp(`\\badmin\\s+create\\s+key ${created.id}\\s`))
    assert.equal(rows.length, 3)
    const page = JSON.parse(await ok(['changes', 'list', '--action', 'revoke', '--limit', '1', '--json'], n.env))
    assert.equal(page.changes.length, 1)
    assert.equal(page.changes[0].resource_id, created.id)
    assert.deepEqual(page.changes[0].changes.status, { from: 'active', to: 'revoked' })
    assert.ok(!JSON.stringify(page).includes(created.key), 'the raw key is in the change log')
    if (n.full) await fails(['changes', 'list', '--action', 'explode'], n.env, 1, /action: must be one of create, update, delete, revoke, rotate/)
  })

  each('a wrong token is refused with a clear message and a non-zero exit', async (n) => {
    const wrong = { ...n.env, RELAYKEY_ADMIN_TOKEN: 'not-the-admin-token-at-all' }
    await fails(['keys', 'list'], wrong, 2, /refused the token \(401 unauthorized\)/)
    if (n.full) await fails(['audit', 'tail', '--follow'], wrong, 2, /refused the token/)
  })
})
