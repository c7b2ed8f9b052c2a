// One pino JSON access line per proxied request, carrying the request's facts and none of its
// secrets: a real RelayKey (embedded mode, one worker) whose stdout is read back line by line.
// Also: RELAYKEY_ACCESS_LOG_SAMPLE drops forwarded lines only, and the logger's own redaction.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { freePort } from '../helpers/ports.js'
import { createLogger } from '../../src/telemetry/logger.js'

type LogLine = Record<string, any>

/** what a client sends besides its virtual key: each value a secret no log may show */
interface ClientSecrets {
  authorization: string
  cookie: string
  query: string
  credentialHeader: string
}

/** the request kinds of one round, and what their access line must say */
type Kind = 'forwarded' | 'bad_key' | 'not_allowed' | 'upstream_5xx' | 'unreachable'
const KINDS: readonly Kind[] = ['forwarded', 'bad_key', 'not_allowed', 'upstream_5xx', 'unreachable']

interface Sent {
  kind: Kind
  requestId: string
  status: number
  code: string | undefined
}

interface Expected {
  partner: string
  path: string
  status: number
  outcome: string
  keyId: string | null
  /** the partner answered, so there is an upstream latency */
  answered: boolean
}

function secret (label: string): string {
  return `${label}-${randomBytes(12).toString('hex')}`
}

/** a live partner `acme` (200, or 503 under /fail/) and `gone`, whose port nobody listens on */
class Scene {
  readonly upstreamSecret = secret('upstream')
  readonly goneUpstreamSecret = secret('gone-upstream')
  readonly client: ClientSecrets = {
    authorization: secret('bearer'), cookie: secret('cookie'), query: secret('query'), credentialHeader: secret('client-cred'),
  }

  acme!: GovernedSetup
  gone!: GovernedSetup
  badKey = ''

  async setUp (rk: RelayKeyProcess, partner: MockPartner): Promise<void> {
    partner.handle((req, res) => {
      const failing = req.url!.startsWith('/v1/fail/')
      const body = JSON.stringify({ ok: !failing })
      res.writeHead(failing ? 503 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
    this.acme = await setUpGovernedPartner(rk, {
      slug: 'acme',
      baseUrl: `${partner.url}/v1`,
      secret: { provider: 'inline', value: this.upstreamSecret },
      allow: [{ method: 'GET', path: '/ok/*' }, { method: 'GET', path: '/fail/*' }],
    })
    this.gone = await setUpGovernedPartner(rk, {
      slug: 'gone',
      baseUrl: `http://127.0.0.1:${await freePort()}/v1`,
      auth: { type: 'query', name: 'api_key' },
      secret: { provider: 'inline', value: this.goneUpstreamSecret },
    })
    // one attempt each, and breakers that stay closed through every failure of the test
    for (const slug of ['acme', 'gone']) {
      const patched = await rk.admin('PATCH', `/admin/partners/${slug}`, { retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 1000 } })
      assert.equal(patched.status, 200, JSON.stringify(patched.body))
    }
    // well formed, wrong checksum
    const last = this.acme.key.at(-1) === 'a' ? 'b' : 'a'
    this.badKey = this.acme.key.slice(0, -1) + last
  }

  /** every value that must never appear in any log line */
  secrets (): string[] {
    return [
      this.upstreamSecret, this.goneUpstreamSecret, this.acme.key, this.gone.key, this.badKey,
      this.client.authorization, this.client.cookie, this.client.query, this.client.credentialHeader,
    ]
  }

  expected (kind: Kind, n: number): Expected {
    switch (kind) {
      case 'forwarded': return { partner: 'acme', path: `/ok/${n}`, status: 200, outcome: 'forwarded', keyId: this.acme.keyId, answered: true }
      case 'bad_key': return { partner: 'acme', path: `/ok/${n}`, status: 401, outcome: 'invalid_key', keyId: null, answered: false }
      case 'not_allowed': return { partner: 'acme', path: `/private/${n}`, status: 403, outcome: 'endpoint_not_allowed', keyId: this.acme.keyId, answered: false }
      case 'upstream_5xx': return { partner: 'acme', path: `/fail/${n}`, status: 503, outcome: 'forwarded', keyId: this.acme.keyId, answered: true }
      case 'unreachable': return { partner: 'gone', path: `/x/${n}`, status: 502, outcome: 'upstream_error', keyId: this.gone.keyId, answered: false }
    }
  }

  async send (rk: RelayKeyProcess, kind: Kind, n: number): Promise<Sent> {
    const want = this.expected(kind, n)
    const key = kind === 'bad_key' ? this.badKey : kind === 'unreachable' ? this.gone.key : this.acme.key
    const res = await request(`${rk.proxyUrl}/proxy/${want.partner}${want.path}?token=${this.client.query}&page=2`, {
      headers: {
        'x-relaykey': key,
        authorization: `Bearer ${this.client.authorization}`,
        cookie: `session=${this.client.cookie}`,
        // a client header named like acme's credential header: stripped, and never logged
        'x-app-token': this.client.credentialHeader,
      },
    })
    const text = await res.body.text()
    let code: string | undefined
    try { code = JSON.parse(text)?.error?.code } catch { code = undefined }
    const requestId = res.headers['x-relaykey-request-id']
    assert.equal(typeof requestId, 'string', `${kind}: no X-RelayKey-Request-Id`)
    return { kind, requestId: requestId as string, status: res.statusCode, code }
  }

  /** one request of each kind per round, each round's requests concurrent */
  async rounds (rk: RelayKeyProcess, rounds: number): Promise<Sent[]> {
    const sent: Sent[] = []
    for (let r = 1; r <= rounds; r++) {
      sent.push(...await Promise.all(KINDS.map((kind) => this.send(rk, kind, r))))
    }
    return sent
  }
}

/** every line of the output, each of which must be one pino JSON object */
function parseLines (output: string): LogLine[] {
  return output.split('\n').filter((line) => line.trim() !== '').map((line) => {
    try {
      return JSON.parse(line) as LogLine
    } catch {
      assert.fail(`not a JSON log line: ${line.slice(0, 200)}`)
    }
  })
}

function accessLinesOf (lines: LogLine[], requestId: string): LogLine[] {
  return lines.filter((l) => l.msg === 'access' && l.request_id === requestId)
}

/** waits (bounded) until every request id has a line with message `msg`; the assertions come later */
async function waitForLines (rk: RelayKeyProcess, requestIds: string[], msg: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const has = (id: string): boolean => rk.output().split('\n').some((l) => l.includes(`"request_id":"${id}"`) && l.includes(`"msg":"${msg}"`))
  while (Date.now() < deadline) {
    if (requestIds.every(has)) return
    await sleep(50)
  }
}

/** waits (bounded) until every request has its audit event: the report, access line included, ran */
async function waitForAudit (rk: RelayKeyProcess, requestIds: string[]): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const page = await rk.admin('GET', '/admin/audit?limit=1000')
    assert.equal(page.status, 200)
    const seen = new Set(page.body.events.map((e: { request_id: string }) => e.request_id))
    if (requestIds.every((id) => seen.has(id))) return
    if (Date.now() > deadline) assert.fail(`audit events missing for ${requestIds.filter((id) => !seen.has(id)).join(', ')}`)
    await sleep(100)
  }
}

function assertNoSecret (output: string, secrets: string[]): void {
  const lines = output.split('\n')
  for (const value of secrets) {
    const line = lines.find((l) => l.includes(value))
    assert.equal(line, undefined, `${value.split('-')[0]} secret found in a log line: ${line?.slice(0, 300)}`)
  }
}

/**
 * Runs `test` against a RelayKey with one worker (the primary and a single worker share the
 * pipe, so no line can be split), then stops it and removes its data dir, even if it never started.
 */
async function withRelayKey (env: Record<string, string>, test: (rk: RelayKeyProcess) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'relaykey-access-log-'))
  try {
    const rk = await startRelayKey({ workers: 1, env, dataDir })
    try {
      await test(rk)
    } finally {
      await rk.stop()
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

describe('access log lines', () => {
  let partner: MockPartner
  before(async () => {
    partner = await startMockPartner()
  })
  after(async () => {
    await partner.close()
  })

  it('one access line per request with its facts, and no secret in any line', async () => {
    await withRelayKey({ RELAYKEY_LOG_LEVEL: 'trace' }, async (rk) => {
      const scene = new Scene()
      await scene.setUp(rk, partner)
      const sent = await scene.rounds(rk, 3)
      assert.equal(sent.length, 15)
      assert.equal(new Set(sent.map((s) => s.requestId)).size, sent.length, 'request ids are unique')

      // what the clients saw
      for (const [i, s] of sent.entries()) {
        const want = scene.expected(s.kind, Math.floor(i / KINDS.length) + 1)
        assert.equal(s.status, want.status, `${s.kind}: status`)
        if (!want.answered) assert.equal(s.code, want.outcome, `${s.kind}: error code`)
      }
      assert.equal(partner.received.filter((r) => r.url.startsWith('/v1/ok/')).length, 3)
      assert.equal(partner.received[0]!.headers['x-app-token'], scene.upstreamSecret, 'the upstream secret was live')

      await waitForLines(rk, sent.map((s) => s.requestId), 'access')
      assert.equal(await rk.stop(), 0)
      const output = rk.output()
      const lines = parseLines(output)

      for (const [i, s] of sent.entries()) {
        const want = scene.expected(s.kind, Math.floor(i / KINDS.length) + 1)
        const mine = accessLinesOf(lines, s.requestId)
        assert.equal(mine.length, 1, `${s.kind} ${s.requestId}: ${mine.length} access lines`)
        const line = mine[0]!
        assert.equal(line.level, 30, `${s.kind}: info level`)
        assert.equal(line.key_id, want.keyId, `${s.kind}: key_id`)
        assert.equal(line.partner, want.partner, `${s.kind}: partner`)
        assert.equal(line.method, 'GET', `${s.kind}: method`)
        assert.equal(line.path, want.path, `${s.kind}: path, without the query string`)
        assert.equal(line.status, want.status, `${s.kind}: status`)
        assert.equal(line.outcome, want.outcome, `${s.kind}: outcome`)
        assert.ok(Number.isInteger(line.latency_ms) && line.latency_ms >= 0, `${s.kind}: latency_ms ${line.latency_ms}`)
        if (want.answered) {
          assert.ok(Number.isInteger(line.upstream_latency_ms) && line.upstream_latency_ms >= 0, `${s.kind}: upstream_latency_ms ${line.upstream_latency_ms}`)
          assert.ok(line.upstream_latency_ms <= line.latency_ms, `${s.kind}: upstream latency within the total`)
        } else {
          assert.equal(line.upstream_latency_ms, null, `${s.kind}: no upstream answer, no upstream latency`)
        }
        assert.equal(typeof line.time, 'string')
        assert.equal(typeof line.pid, 'number')
      }
      // nothing else writes access lines
      assert.equal(lines.filter((l) => l.msg === 'access').length, sent.length)

      // the failed upstream connections were logged as errors: those lines are among the ones searched below
      for (const s of sent.filter((x) => x.kind === 'unreachable')) {
        const failure = lines.filter((l) => l.request_id === s.requestId && l.msg === 'upstream request failed')
        assert.equal(failure.length, 1, `one error line for ${s.requestId}`)
        assert.equal(failure[0]!.level, 40)
        assert.equal(failure[0]!.partner, 'gone')
        assert.equal(typeof failure[0]!.err?.type, 'string', 'the error class is logged')
        assert.equal(failure[0]!.err?.message, undefined, 'never the message: it can quote the URL and its query credential')
      }

      assertNoSecret(output, scene.secrets())
      for (const l of lines) {
        if (typeof l.path === 'string') assert.ok(!l.path.includes('?'), `a path with a query string: ${l.path}`)
      }
    })
  })

  it('RELAYKEY_ACCESS_LOG_SAMPLE=0: forwarded requests write no access line, refusals still do', async () => {
    await withRelayKey({ RELAYKEY_ACCESS_LOG_SAMPLE: '0' }, async (rk) => {
      const scene = new Scene()
      await scene.setUp(rk, partner)
      const sent = await scene.rounds(rk, 2)
      await waitForAudit(rk, sent.map((s) => s.requestId))
      const refusals = sent.filter((s) => s.kind !== 'forwarded' && s.kind !== 'upstream_5xx')
      // the audit events are in, so the access lines were written: a short wait for the pipe
      await waitForLines(rk, refusals.map((s) => s.requestId), 'access', 2000)
      assert.equal(await rk.stop(), 0)
      const output = rk.output()
      const lines = parseLines(output)

      for (const s of sent.filter((x) => x.kind === 'forwarded' || x.kind === 'upstream_5xx')) {
        assert.equal(accessLinesOf(lines, s.requestId).length, 0, `${s.kind} (forwarded, status ${s.status}) was not sampled out`)
      }
      const missing = refusals.filter((s) => accessLinesOf(lines, s.requestId).length !== 1)
      assert.deepEqual(missing.map((s) => `${s.kind} ${s.status} ${s.code ?? ''}`), [],
        'every refusal has exactly one access line whatever the sample rate ("refusals always, forwarded sampled")')
      for (const s of refusals) assert.equal(accessLinesOf(lines, s.requestId)[0]!.outcome, s.code)
      assertNoSecret(output, scene.secrets())
    })
  })
})

describe('the logger\'s redaction (second line of defence)', () => {
  it('censors X-RelayKey, Authorization, cookies, query strings and secret-named fields wherever call sites put them', () => {
    const written: string[] = []
    const logger = createLogger('info', { write: (line: string) => { written.push(line) } })
    const values = {
      key: secret('vk'), bearer: secret('bearer'), cookie: secret('cookie'), setCookie: secret('set-cookie'),
      query: secret('query'), token: secret('token'), secret: secret('secret'), payment: secret('payment'),
    }
    logger.info({
      req: { headers: { 'x-relaykey': values.key, authorization: `Bearer ${values.bearer}`, cookie: `session=${values.cookie}`, 'payment-signature': values.payment } },
      res: { headers: { 'set-cookie': `session=${values.setCookie}` } },
    }, 'a request')
    logger.info({ headers: { 'x-relaykey': values.key, authorization: `Bearer ${values.bearer}`, cookie: `s=${values.cookie}` } }, 'bare headers')
    logger.info({ query: `token=${values.query}`, token: values.token, secret: values.secret, key: values.key }, 'top-level fields')
    logger.info({ credential: { secret: values.secret, value: values.secret, token: values.token, query: values.query } }, 'nested fields')
    logger.flush()
    assert.equal(written.length, 4)
    const text = written.join('')
    for (const [name, value] of Object.entries(values)) assert.ok(!text.includes(value), `${name} was not redacted: ${text}`)
    const first = JSON.parse(written[0]!)
    assert.equal(first.req.headers['x-relaykey'], '[redacted]')
    assert.equal(first.req.headers.authorization, '[redacted]')
    assert.equal(first.req.headers.cookie, '[redacted]')
    assert.equal(first.res.headers['set-cookie'], '[redacted]')
    assert.equal(JSON.parse(written[2]!).query, '[redacted]')
  })
})
