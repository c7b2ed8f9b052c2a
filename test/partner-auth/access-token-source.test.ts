// The OAuth2 token source against a real token server (node:http) and the real shared store of
// embedded mode (a SQLite file): a refresh that fails in the background never takes the worker
// down, a claim let go by a failed fetch is taken over at once, and a token whose answer was
// slow is still usable when it arrives.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import pino from 'pino'
import { AccessTokenSource, type TokenEndpoint } from '../../src/partner-auth/access-token-source.js'
import { TokenSeal } from '../../src/partner-auth/shared-tokens.js'
import { SqliteSharedTokens } from '../../src/store/sqlite/sqlite-shared-tokens.js'
import { openSqliteDatabase } from '../../src/store/sqlite/schema.js'

type Answer = (req: IncomingMessage, res: ServerResponse) => void

/** a token endpoint whose answers the test scripts one by one */
async function startTokenServer (): Promise<{ url: string; requests: number; next: Answer[]; server: Server }> {
  const state = { url: '', requests: 0, next: [] as Answer[], server: createServer() }
  state.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    state.requests++
    req.resume()
    req.on('end', () => (state.next.shift() ?? grant(3600))(req, res))
  })
  state.server.listen(0, '127.0.0.1')
  await once(state.server, 'listening')
  state.url = `http://127.0.0.1:${(state.server.address() as { port: number }).port}`
  return state
}

function grant (expiresIn: number, delayMs = 0): Answer {
  return (_req, res) => {
    setTimeout(() => {
      const body = JSON.stringify({ access_token: randomBytes(16).toString('hex'), token_type: 'Bearer', expires_in: expiresIn })
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    }, delayMs)
  }
}

function refuse (status: number, delayMs = 0): Answer {
  return (_req, res) => {
    setTimeout(() => res.writeHead(status, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}'), delayMs)
  }
}

describe('AccessTokenSource', () => {
  let dir: string
  let server: Awaited<ReturnType<typeof startTokenServer>>
  let pool: Pool
  let shared: SqliteSharedTokens
  const seal = new TokenSeal(randomBytes(32))
  const logger = pino({ level: 'silent' })
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'relaykey-tokens-'))
    openSqliteDatabase(join(dir, 'relaykey.db')).close()
    shared = new SqliteSharedTokens(join(dir, 'relaykey.db'), seal)
    server = await startTokenServer()
    pool = new Pool(server.url)
    process.on('unhandledRejection', onUnhandled)
  })
  after(async () => {
    process.off('unhandledRejection', onUnhandled)
    await pool.close()
    await shared.close()
    server.server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const endpoint = (): TokenEndpoint => ({
    auth: { type: 'oauth2_client_credentials', token_url: `${server.url}/oauth/token`, scope: null, audience: null, client_auth: 'basic', token_url_other_origin: false },
    clientId: 'id',
    clientSecret: 'secret',
    dispatcher: pool,
    timeoutMs: 5000,
  })
  const source = (id: string): AccessTokenSource => new AccessTokenSource(id, endpoint(), shared, logger)

  it('a background refresh that fails after the token stopped being usable is no unhandled rejection', async () => {
    const tokens = source('bg')
    server.next.push(grant(1), refuse(503, 300))
    await tokens.ready(Date.now())
    // 1 s lifetime: refreshed from 0.8 s, usable until 0.9 s; the refresh fails at about 1.15 s
    await sleep(850)
    assert.equal(tokens.ready(Date.now()), null, 'the current token still serves')
    await sleep(700)
    assert.deepEqual(unhandled, [])
    // a request now waits for a token and hears of the failure
    server.next.push(refuse(401))
    await assert.rejects(tokens.ready(Date.now())!, /token URL answered 401 \(invalid_client\)/)
    assert.deepEqual(unhandled, [])
  })

  it('a claim let go by a failed fetch is taken over by a waiting worker at once, not after the claim\'s 10 s', async () => {
    const first = source('claim')
    const second = source('claim')
    server.next.push(refuse(401, 200), grant(3600))
    const failing = first.ready(Date.now())!
    await sleep(20) // the first holds the claim
    const started = Date.now()
    const waiting = second.ready(Date.now())!
    await assert.rejects(failing, /401/)
    await waiting
    assert.ok(Date.now() - started < 2000, `the waiting worker got its token after ${Date.now() - started} ms`)
    assert.equal(second.ready(Date.now()), null)
    // and shared it: a third worker takes it from the store without a fetch
    const requests = server.requests
    const third = source('claim')
    await third.ready(Date.now())
    assert.equal(third.token(), second.token())
    assert.equal(server.requests, requests)
  })

  it('a token whose answer took most of its lifetime is usable when it arrives: one fetch, no loop', async () => {
    const tokens = source('slow')
    const requests = server.requests
    server.next.push(grant(1, 950))
    await tokens.ready(Date.now())
    assert.equal(tokens.ready(Date.now()), null)
    assert.equal(server.requests, requests + 1)
  })
})
