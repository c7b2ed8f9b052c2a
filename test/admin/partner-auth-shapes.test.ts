// The partner auth schemes (hmac with its Sumsub preset, oauth2_client_credentials, mtls, jwt with
// its Fireblocks preset), a partner's own CA (tls.ca) and the credentials' secret parts, driven
// over the admin API of a running RelayKey as an operator would, against both stores (SQLite in
// embedded mode, PostgreSQL in distributed mode): every shape is read back exactly as stored,
// every refusal names its field, a credential its partner's auth could not use is refused naming
// the missing part, PATCH keeps or removes single parts, and no secret value ever comes back.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import postgres from 'postgres'
import { request } from 'undici'
import { checkAdminExchange } from '../helpers/openapi-check.js'
import { assertInvalid, type Reply } from './admin-harness.js'
import { distributedEnv, startRelayKey, type RelayKeyProcess } from '../helpers/relaykey-process.js'
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js'
import { makeTestPki } from '../helpers/test-certificates.js'
import { InlineSecretCipher } from '../../src/secrets/inline-cipher.js'

const BASE_URLS = { production: 'https://api.example.com/v1', sandbox: 'https://sandbox.example.com/v1' }
const TOKEN_URL = 'https://api.example.com/oauth/token'
const DEFAULT_MAX_BODY = 10 * 1024 * 1024

const SUMSUB = {
  type: 'hmac',
  preset: 'sumsub',
  algorithm: 'sha256',
  encoding: 'hex',
  canonical: ['timestamp', 'method', 'path', 'body'],
  separator: '',
  timestamp_unit: 's',
  timestamp_header: 'x-app-access-ts',
  nonce_header: null,
  signature_header: 'x-app-access-sig',
  signature_prefix: '',
  secret_header: { name: 'x-app-token', prefix: '' },
  max_body_bytes: DEFAULT_MAX_BODY,
}

const FIREBLOCKS = {
  type: 'jwt',
  preset: 'fireblocks',
  algorithm: 'RS256',
  header: { name: 'authorization', prefix: 'Bearer ' },
  secret_header: { name: 'x-api-key', prefix: '' },
  expires_in_seconds: 30,
  path_claim: 'uri',
  nonce_claim: 'nonce',
  body_hash_claim: 'bodyHash',
  subject_is_secret: true,
  claims: {},
  key_id: null,
  max_body_bytes: DEFAULT_MAX_BODY,
}

const CUSTOM_HMAC = {
  type: 'hmac',
  algorithm: 'sha512',
  encoding: 'base64',
  canonical: ['timestamp', 'nonce', 'method', 'path', { header: 'content-type' }, { literal: 'v1' }, 'secret', 'body'],
  separator: '|',
  timestamp_unit: 'ms',
  timestamp_header: 'X-Request-Ts',
  nonce_header: 'X-Request-Nonce',
  signature_header: 'X-Request-Signature',
  signature_prefix: 'v1=',
  secret_header: { name: 'X-Api-Key' },
  max_body_bytes: 2048,
}

const CUSTOM_JWT = {
  type: 'jwt',
  algorithm: 'ES256',
  header: { name: 'X-Signed-Request', prefix: 'JWT ' },
  secret_header: { name: 'X-Api-Key' },
  expires_in_seconds: 120,
  path_claim: 'path',
  nonce_claim: 'jti',
  body_hash_claim: 'body_sha256',
  subject_is_secret: true,
  claims: { iss: 'relaykey', aud: 'custody.example', ver: 2, live: false },
  key_id: 'key-2026-01',
  max_body_bytes: 65536,
}

/** [what, auth as sent, auth as it must read back] */
const ACCEPTED: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
  ['the Sumsub hmac preset, expanded to the fields it stands for', { type: 'hmac', preset: 'sumsub' }, SUMSUB],
  ['the Sumsub hmac preset with its own max_body_bytes', { type: 'hmac', preset: 'sumsub', max_body_bytes: 4096 }, { ...SUMSUB, max_body_bytes: 4096 }],
  ['a custom hmac giving every field', CUSTOM_HMAC, { ...CUSTOM_HMAC, preset: null, secret_header: { name: 'X-Api-Key', prefix: '' } }],
  ['a custom hmac with only the required fields', { type: 'hmac', canonical: ['method', 'path', 'body'], signature_header: 'X-Sig' }, {
    type: 'hmac', preset: null, algorithm: 'sha256', encoding: 'hex', canonical: ['method', 'path', 'body'], separator: '', timestamp_unit: 's',
    timestamp_header: null, nonce_header: null, signature_header: 'X-Sig', signature_prefix: '', secret_header: null, max_body_bytes: DEFAULT_MAX_BODY,
  }],
  ['a custom hmac with HEX encoding and an explicit null preset', { type: 'hmac', preset: null, encoding: 'HEX', canonical: ['path'], signature_header: 'X-Sig' }, {
    type: 'hmac', preset: null, algorithm: 'sha256', encoding: 'HEX', canonical: ['path'], separator: '', timestamp_unit: 's',
    timestamp_header: null, nonce_header: null, signature_header: 'X-Sig', signature_prefix: '', secret_header: null, max_body_bytes: DEFAULT_MAX_BODY,
  }],
  ['oauth2 client credentials with scope, audience and body client auth',
    { type: 'oauth2_client_credentials', token_url: TOKEN_URL, scope: 'payments:read payments:write', audience: 'https://api.example.com/', client_auth: 'body' },
    { type: 'oauth2_client_credentials', token_url: TOKEN_URL, scope: 'payments:read payments:write', audience: 'https://api.example.com/', client_auth: 'body', token_url_other_origin: false }],
  ['oauth2 client credentials with defaults, its token URL on the sandbox origin with a query',
    { type: 'oauth2_client_credentials', token_url: 'https://sandbox.example.com:443/oauth/token?tenant=42' },
    { type: 'oauth2_client_credentials', token_url: 'https://sandbox.example.com/oauth/token?tenant=42', scope: null, audience: null, client_auth: 'basic', token_url_other_origin: false }],
  ['oauth2 client credentials with its token URL at an identity provider of its own, said so',
    { type: 'oauth2_client_credentials', token_url: 'https://auth.example.com/oauth2/token', token_url_other_origin: true },
    { type: 'oauth2_client_credentials', token_url: 'https://auth.example.com/oauth2/token', scope: null, audience: null, client_auth: 'basic', token_url_other_origin: true }],
  ['mtls alone', { type: 'mtls' }, { type: 'mtls', header: null }],
  ['mtls with a header credential', { type: 'mtls', header: { name: 'X-Api-Key', prefix: 'Key ' } }, { type: 'mtls', header: { name: 'X-Api-Key', prefix: 'Key ' } }],
  ['the Fireblocks jwt preset, expanded to the fields it stands for', { type: 'jwt', preset: 'fireblocks' }, FIREBLOCKS],
  ['a custom jwt giving every field', CUSTOM_JWT, { ...CUSTOM_JWT, preset: null, secret_header: { name: 'X-Api-Key', prefix: '' } }],
  ['a custom jwt with only the algorithm', { type: 'jwt', algorithm: 'RS256' }, {
    type: 'jwt', preset: null, algorithm: 'RS256', header: { name: 'authorization', prefix: 'Bearer ' }, secret_header: null, expires_in_seconds: 30,
    path_claim: null, nonce_claim: null, body_hash_claim: null, subject_is_secret: false, claims: {}, key_id: null, max_body_bytes: DEFAULT_MAX_BODY,
  }],
]

const hmacWith = (fields: Record<string, unknown>): Record<string, unknown> =>
  ({ type: 'hmac', canonical: ['timestamp', 'method', 'path', 'body'], timestamp_header: 'X-Ts', signature_header: 'X-Sig', ...fields })

/** [what, partner fields replacing the defaults, field the 400 must name] */
const REFUSED: Array<[string, Record<string, unknown>, string]> = [
  ['mtls on an http base URL (no client certificate would go)', { base_urls: { production: 'http://api.example.com' }, auth: { type: 'mtls' } }, 'auth.type'],
  ['an http token URL on another origin (the client secret would travel in clear)', { auth: { type: 'oauth2_client_credentials', token_url: 'http://idp.example.net/token', token_url_other_origin: true } }, 'auth.token_url'],
  ['a canonical header part RelayKey strips (Host)', { auth: hmacWith({ canonical: ['timestamp', { header: 'Host' }] }) }, 'auth.canonical[1].header'],
  ['a jwt secret_header on the token\'s own header', { auth: { type: 'jwt', algorithm: 'ES256', secret_header: { name: 'Authorization' } } }, 'auth.secret_header.name'],
  ['an unknown hmac preset', { auth: { type: 'hmac', preset: 'stripe' } }, 'auth.preset'],
  ['an unknown jwt preset (an hmac one)', { auth: { type: 'jwt', preset: 'sumsub' } }, 'auth.preset'],
  ['a preset named like an Object.prototype member (constructor)', { auth: { type: 'hmac', preset: 'constructor' } }, 'auth.preset'],
  ['a preset named like an Object.prototype member (toString)', { auth: { type: 'jwt', preset: 'toString' } }, 'auth.preset'],
  ['a preset named like an Object.prototype member (__proto__)', { auth: { type: 'hmac', preset: '__proto__' } }, 'auth.preset'],
  ['a preset that is not a string', { auth: { type: 'hmac', preset: 1 } }, 'auth.preset'],
  ['an unknown field next to the hmac preset', { auth: { type: 'hmac', preset: 'sumsub', algorithm: 'sha512' } }, 'auth.algorithm'],
  ['an unknown field next to the jwt preset', { auth: { type: 'jwt', preset: 'fireblocks', claims: { iss: 'x' } } }, 'auth.claims'],
  ['max_body_bytes below 0 with a preset', { auth: { type: 'hmac', preset: 'sumsub', max_body_bytes: -1 } }, 'auth.max_body_bytes'],
  ['max_body_bytes above 100 MiB', { auth: hmacWith({ max_body_bytes: 100 * 1024 * 1024 + 1 }) }, 'auth.max_body_bytes'],
  ['a fractional max_body_bytes', { auth: { type: 'jwt', preset: 'fireblocks', max_body_bytes: 1.5 } }, 'auth.max_body_bytes'],
  ['max_body_bytes as a string', { auth: hmacWith({ max_body_bytes: '4096' }) }, 'auth.max_body_bytes'],
  ['a canonical part that is not allowed', { auth: hmacWith({ canonical: ['timestamp', 'query', 'body'] }) }, 'auth.canonical[1]'],
  ['a canonical part with both header and literal', { auth: hmacWith({ canonical: ['timestamp', { header: 'x-a', literal: 'b' }] }) }, 'auth.canonical[1].literal'],
  ['a canonical header part with an invalid name', { auth: hmacWith({ canonical: ['timestamp', { header: 'x a' }] }) }, 'auth.canonical[1].header'],
  ['an empty canonical list', { auth: hmacWith({ canonical: [] }) }, 'auth.canonical'],
  ['no canonical list', { auth: { type: 'hmac', signature_header: 'X-Sig' } }, 'auth.canonical'],
  ['timestamp in canonical without timestamp_header', { auth: hmacWith({ timestamp_header: undefined }) }, 'auth.timestamp_header'],
  ['nonce in canonical without nonce_header', { auth: hmacWith({ canonical: ['timestamp', 'nonce'] }) }, 'auth.nonce_header'],
  ['an hmac without signature_header', { auth: hmacWith({ signature_header: undefined }) }, 'auth.signature_header'],
  ['a reserved signature_header (host)', { auth: hmacWith({ signature_header: 'host' }) }, 'auth.signature_header'],
  ['a reserved signature_header in another case (Content-Length)', { auth: hmacWith({ signature_header: 'Content-Length' }) }, 'auth.signature_header'],
  ['a reserved timestamp_header (x-forwarded-for)', { auth: hmacWith({ timestamp_header: 'X-Forwarded-For' }) }, 'auth.timestamp_header'],
  ['a reserved hmac secret_header (x-relaykey)', { auth: hmacWith({ secret_header: { name: 'x-relaykey' } }) }, 'auth.secret_header.name'],
  ['a reserved jwt header (proxy-authorization)', { auth: { type: 'jwt', algorithm: 'RS256', header: { name: 'Proxy-Authorization' } } }, 'auth.header.name'],
  ['a reserved mtls header (transfer-encoding)', { auth: { type: 'mtls', header: { name: 'Transfer-Encoding' } } }, 'auth.header.name'],
  ['an unknown hmac algorithm', { auth: hmacWith({ algorithm: 'md5' }) }, 'auth.algorithm'],
  ['an unknown hmac encoding', { auth: hmacWith({ encoding: 'base32' }) }, 'auth.encoding'],
  ['an unknown timestamp unit', { auth: hmacWith({ timestamp_unit: 'us' }) }, 'auth.timestamp_unit'],
  ['a signature_prefix with a line break', { auth: hmacWith({ signature_prefix: 'v1\r\nX-Evil: 1' }) }, 'auth.signature_prefix'],
  ['an unknown hmac field', { auth: hmacWith({ digest: 'hex' }) }, 'auth.digest'],
  ['an OAuth2 token_url on another host', { auth: { type: 'oauth2_client_credentials', token_url: 'https://auth.example.com/oauth/token' } }, 'auth.token_url'],
  ['an OAuth2 token_url on another host, token_url_other_origin false', { auth: { type: 'oauth2_client_credentials', token_url: 'https://auth.example.com/oauth/token', token_url_other_origin: false } }, 'auth.token_url'],
  ['a token_url_other_origin that is not true or false', { auth: { type: 'oauth2_client_credentials', token_url: 'https://auth.example.com/oauth/token', token_url_other_origin: 'yes' } }, 'auth.token_url_other_origin'],
  ['an OAuth2 token_url on another scheme', { auth: { type: 'oauth2_client_credentials', token_url: 'http://api.example.com/oauth/token' } }, 'auth.token_url'],
  ['an OAuth2 token_url on another port', { auth: { type: 'oauth2_client_credentials', token_url: 'https://api.example.com:8443/oauth/token' } }, 'auth.token_url'],
  ['an OAuth2 token_url with credentials in it', { auth: { type: 'oauth2_client_credentials', token_url: 'https://id:secret@api.example.com/oauth/token' } }, 'auth.token_url'],
  ['an OAuth2 token_url that is no URL', { auth: { type: 'oauth2_client_credentials', token_url: '/oauth/token' } }, 'auth.token_url'],
  ['no OAuth2 token_url', { auth: { type: 'oauth2_client_credentials' } }, 'auth.token_url'],
  ['an unknown OAuth2 client_auth', { auth: { type: 'oauth2_client_credentials', token_url: TOKEN_URL, client_auth: 'private_key_jwt' } }, 'auth.client_auth'],
  ['an OAuth2 scope with a line break', { auth: { type: 'oauth2_client_credentials', token_url: TOKEN_URL, scope: 'a\nb' } }, 'auth.scope'],
  ['an unknown OAuth2 field', { auth: { type: 'oauth2_client_credentials', token_url: TOKEN_URL, client_secret: 'x' } }, 'auth.client_secret'],
  ['an unknown mtls field', { auth: { type: 'mtls', cert: 'x' } }, 'auth.cert'],
  ['jwt algorithm HS256', { auth: { type: 'jwt', algorithm: 'HS256' } }, 'auth.algorithm'],
  ['jwt algorithm none', { auth: { type: 'jwt', algorithm: 'none' } }, 'auth.algorithm'],
  ['a custom jwt without an algorithm', { auth: { type: 'jwt' } }, 'auth.algorithm'],
  ['jwt expires_in_seconds of 0', { auth: { type: 'jwt', algorithm: 'ES256', expires_in_seconds: 0 } }, 'auth.expires_in_seconds'],
  ['a jwt claim with an invalid name', { auth: { type: 'jwt', algorithm: 'ES256', claims: { 'bad name': 1 } } }, 'auth.claims.bad name'],
  ['a jwt claim that is an object', { auth: { type: 'jwt', algorithm: 'ES256', claims: { ctx: { a: 1 } } } }, 'auth.claims.ctx'],
  ['an unknown auth type', { auth: { type: 'aws_sigv4' } }, 'auth.type'],
  ['tls.ca with an unknown provider', { tls: { ca: { provider: 'vault', ref: 'x' } } }, 'tls.ca.provider'],
  ['tls.ca as a bare string', { tls: { ca: '-----BEGIN CERTIFICATE-----' } }, 'tls.ca'],
  ['tls without ca', { tls: {} }, 'tls.ca'],
  ['tls with an unknown member', { tls: { ca: { provider: 'env', ref: 'PARTNER_CA' }, insecure: true } }, 'tls.insecure'],
  ['tls.ca naming one of RelayKey\'s settings', { tls: { ca: { provider: 'env', ref: 'RELAYKEY_MASTER_KEY' } } }, 'tls.ca.ref'],
  ['tls.ca inline with a control character', { tls: { ca: { provider: 'inline', value: '-----BEGIN CERTIFICATE-----\u0007' } } }, 'tls.ca.value'],
]

// ---------------------------------------------------------------------------------------------
// Raw secret values: fresh every run, never to be seen again once sent.

const rnd = (prefix: string): string => `${prefix}${randomBytes(12).toString('hex')}`
const APP_TOKEN = rnd('sbx:app-token-')
const SIGNING_SECRET = rnd('signing-secret-')
const CLIENT_ID = rnd('client-id-')
const CLIENT_SECRET = rnd('client-secret-')
const ROTATED_CLIENT_SECRET = rnd('client-secret-rotated-')
const HEADER_SECRET = rnd('header-secret-')
const JWT_API_KEY = rnd('fireblocks-api-key-')
const JWT_PRIVATE_KEY = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
const pki = makeTestPki()
const CLIENT = pki.client('partner-auth-shapes')
/** the same key with CRLF line ends, as a file saved on Windows has them */
const CLIENT_KEY_CRLF = CLIENT.key.replace(/\n/g, '\r\n')

/** every base64 line of a PEM: how a PEM leaks once JSON or a log escapes its line breaks */
function pemLines (pem: string): string[] {
  return pem.split(/\r?\n/).filter((line) => line.length >= 40 && !line.startsWith('-----'))
}

const NEEDLES = [
  APP_TOKEN, SIGNING_SECRET, CLIENT_ID, CLIENT_SECRET, ROTATED_CLIENT_SECRET, HEADER_SECRET, JWT_API_KEY,
  ...pemLines(JWT_PRIVATE_KEY), ...pemLines(CLIENT.key), ...pemLines(CLIENT.cert), ...pemLines(pki.ca.cert),
]

const inline = (value: string): Record<string, string> => ({ provider: 'inline', value })

type StoredSecret = { provider: 'inline'; ciphertext: string } | { provider: 'env' | 'file'; ref: string }

function assertAbsent (haystack: string, where: string): void {
  for (const needle of NEEDLES) assert.ok(!haystack.includes(needle), `${needle.slice(0, 12)}… found in ${where}`)
}

/** the credential as the admin API must show it: parts by provider (and ref) only */
/**
 * Inline secrets show a digest of their ciphertext (`sealed`): checked for its shape here and
 * left out, so the assertions below compare what the API shows of each reference
 */
function withoutSealedDigests (value: any): any {
  if (Array.isArray(value)) return value.map(withoutSealedDigests)
  if (value === null || typeof value !== 'object') return value
  if (value.provider === 'inline' && 'sealed' in value) {
    assert.match(value.sealed, /^[0-9a-f]{16}$/)
    const { sealed: _sealed, ...rest } = value
    return rest
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutSealedDigests(v)]))
}

function assertCredentialView (credential: Record<string, unknown>, parts: Record<string, unknown>): void {
  const known = new Set(['id', 'partner_id', 'name', 'environment', 'secret', 'weight', 'rate_limit', 'created_at', 'updated_at'])
  const shown: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(credential)) {
    if (field === 'secret' || !known.has(field)) shown[field] = value
  }
  assert.deepEqual(shown, parts, `credential ${String(credential.name)} shows exactly these secret parts`)
}

for (const mode of ['embedded', 'distributed'] as const) {
  describe(`partner auth shapes over the admin API, ${mode} mode (${mode === 'embedded' ? 'SQLite' : 'PostgreSQL'})`, () => {
    let rk: RelayKeyProcess
    let db: TestDatabase | null = null
    let sql: postgres.Sql | null = null
    let cipher: InlineSecretCipher
    let secretsDir = ''
    const bodies: string[] = []

    const call = async (method: string, path: string, body?: unknown): Promise<Reply> => {
      const headers: Record<string, string> = { authorization: `Bearer ${rk.adminToken}` }
      if (body !== undefined) headers['content-type'] = 'application/json'
      const res = await request(rk.adminUrl + path, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) })
      const text = await res.body.text()
      bodies.push(text)
      checkAdminExchange(method, path, body, res.statusCode, text === '' ? undefined : String(res.headers['content-type']).startsWith('application/json') ? JSON.parse(text) : text, res.headers['content-type'] as string | undefined)
      let json: any = null
      if (text !== '' && String(res.headers['content-type']).startsWith('application/json')) json = withoutSealedDigests(JSON.parse(text))
      return { status: res.statusCode, headers: res.headers, text, json }
    }

    const created = async (path: string, body: unknown): Promise<any> => {
      const reply = await call('POST', path, body)
      assert.equal(reply.status, 201, reply.text)
      return reply.json
    }

    /** a row's JSON column straight from the store, as it was persisted */
    const column = async (table: 'credentials' | 'partners', key: 'id' | 'slug', value: string, name: string): Promise<any> => {
      let raw: unknown
      if (sql !== null) {
        const rows = await sql.unsafe(`SELECT ${name} AS v FROM ${table} WHERE ${key} = $1`, [value])
        assert.equal(rows.length, 1)
        raw = rows[0]!.v
      } else {
        const sqlite = new Database(join(rk.dataDir, 'relaykey.db'), { readonly: true, fileMustExist: true })
        try {
          const row = sqlite.prepare(`SELECT ${name} AS v FROM ${table} WHERE ${key} = ?`).get(value) as { v: unknown } | undefined
          assert.ok(row !== undefined)
          raw = row.v
        } finally {
          sqlite.close()
        }
      }
      return typeof raw === 'string' ? JSON.parse(raw) : raw
    }

    /** a stored secret opened: the plaintext of an inline one, the reference of others */
    const open = (stored: StoredSecret | null | undefined): string | null | undefined => {
      if (stored === null || stored === undefined) return stored
      if (stored.provider === 'inline') {
        assertAbsent(JSON.stringify(stored), 'a stored inline secret (it must be sealed)')
        return cipher.decrypt(stored.ciphertext)
      }
      return `${stored.provider}:${stored.ref}`
    }

    const storedCredential = async (id: string): Promise<{ secret: string | null; parts: Record<string, string>; sealed: Record<string, StoredSecret> }> => {
      const sealed = await column('credentials', 'id', id, 'secret_parts') as Record<string, StoredSecret>
      const parts: Record<string, string> = {}
      for (const [name, stored] of Object.entries(sealed)) parts[name] = open(stored)!
      return { secret: open(await column('credentials', 'id', id, 'secret')) ?? null, parts, sealed }
    }

    before(async () => {
      const masterKey = randomBytes(32)
      cipher = new InlineSecretCipher(masterKey)
      secretsDir = mkdtempSync(join(tmpdir(), 'relaykey-shapes-secrets-'))
      const extra = { RELAYKEY_MASTER_KEY: masterKey.toString('hex'), RELAYKEY_SECRET_FILES_DIR: secretsDir, RELAYKEY_LOG_LEVEL: 'debug' }
      if (mode === 'distributed') {
        db = await createTestDatabase()
        sql = postgres(db.url, { max: 1, onnotice: () => {} })
      }
      rk = await startRelayKey({ workers: 1, env: db === null ? extra : distributedEnv(db.url, { extra }) })
      // the partners the credential tests use
      const partner = (slug: string, auth: unknown): Promise<any> => created('/admin/partners', { slug, base_urls: BASE_URLS, auth })
      await partner('c-sumsub', { type: 'hmac', preset: 'sumsub' })
      await partner('c-hmac-keyonly', { type: 'hmac', canonical: ['method', 'path', 'body'], signature_header: 'X-Sig' })
      await partner('c-oauth', { type: 'oauth2_client_credentials', token_url: TOKEN_URL, client_auth: 'body' })
      await partner('c-header', { type: 'header', name: 'X-Api-Key' })
      await partner('c-mtls', { type: 'mtls' })
      await partner('c-mtls-header', { type: 'mtls', header: { name: 'X-Api-Key' } })
      await partner('c-jwt', { type: 'jwt', preset: 'fireblocks' })
    })

    after(async () => {
      try {
        // whatever happened above: no response ever carried a secret, nor did the log
        for (const body of bodies) {
          assertAbsent(body, `a response: ${body.slice(0, 200)}`)
          assert.ok(!body.includes('"ciphertext"') && !body.includes('"secret_parts"'), `a response shows stored secret material: ${body.slice(0, 200)}`)
        }
        assert.equal(await rk.stop(), 0)
        assertAbsent(rk.output(), 'the log')
      } finally {
        await rk.stop()
        await sql?.end()
        await db?.drop()
        rmSync(secretsDir, { recursive: true, force: true })
      }
    })

    // ---- shapes accepted and read back -------------------------------------------------------

    ACCEPTED.forEach(([what, auth, expected], i) => {
      it(`accepts ${what} and reads it back exactly (create, get, list)`, async () => {
        const slug = `shape-${i}`
        const reply = await call('POST', '/admin/partners', { slug, base_urls: BASE_URLS, auth })
        assert.equal(reply.status, 201, reply.text)
        assert.deepEqual(reply.json.auth, expected)
        assert.equal(reply.json.tls, null)
        assert.deepEqual((await call('GET', `/admin/partners/${slug}`)).json.auth, expected)
        const listed = (await call('GET', '/admin/partners')).json.find((p: { slug: string }) => p.slug === slug)
        assert.deepEqual(listed.auth, expected)
        assert.deepEqual(await column('partners', 'slug', slug, 'auth'), expected, 'stored as shown')
      })
    })

    it('accepts a custom hmac whose parts are joined by a line break, and reads it back', async () => {
      // the separator is only ever part of the string to sign, never of a header, and "\n" is
      // the separator most documented HMAC schemes use
      const auth = { type: 'hmac', canonical: ['timestamp', 'method', 'path', 'body'], separator: '\n', timestamp_header: 'X-Ts', signature_header: 'X-Sig' }
      const reply = await call('POST', '/admin/partners', { slug: 'shape-newline', base_urls: BASE_URLS, auth })
      assert.equal(reply.status, 201, reply.text)
      assert.equal(reply.json.auth.separator, '\n')
      assert.deepEqual((await call('GET', '/admin/partners/shape-newline')).json.auth, reply.json.auth)
    })

    it('patches a partner to a preset and back to a custom scheme, reading each back', async () => {
      await created('/admin/partners', { slug: 'shape-patched', base_urls: BASE_URLS, auth: { type: 'header', name: 'X-App-Token' } })
      const toSumsub = await call('PATCH', '/admin/partners/shape-patched', { auth: { type: 'hmac', preset: 'sumsub' } })
      assert.equal(toSumsub.status, 200, toSumsub.text)
      assert.deepEqual(toSumsub.json.auth, SUMSUB)
      const toOauth = await call('PATCH', '/admin/partners/shape-patched', { auth: { type: 'oauth2_client_credentials', token_url: TOKEN_URL } })
      assert.equal(toOauth.status, 200, toOauth.text)
      assert.deepEqual((await call('GET', '/admin/partners/shape-patched')).json.auth,
        { type: 'oauth2_client_credentials', token_url: TOKEN_URL, scope: null, audience: null, client_auth: 'basic', token_url_other_origin: false })
      // its token URL must stay on one of its origins
      assertInvalid(await call('PATCH', '/admin/partners/shape-patched', { base_urls: { production: 'https://api2.example.com/v1' } }), 'auth.token_url')
      assertInvalid(await call('PATCH', '/admin/partners/shape-patched', { auth: { type: 'hmac', preset: 'sumsub', signature_header: 'x' } }), 'auth.signature_header')
      assertInvalid(await call('PATCH', '/admin/partners/shape-patched', { auth: hmacWith({ signature_header: 'host' }) }), 'auth.signature_header')
      const after = await call('GET', '/admin/partners/shape-patched')
      assert.equal(after.json.auth.type, 'oauth2_client_credentials', 'a refused patch changed nothing')
      assert.deepEqual(after.json.base_urls, BASE_URLS)
    })

    it("accepts tls.ca inline (a PEM bundle, line breaks and all), env and file, and shows only provider and ref", async () => {
      const bundle = pki.ca.cert + pki.otherCa.cert
      const inlineCa = await created('/admin/partners', { slug: 'ca-inline', base_urls: BASE_URLS, auth: { type: 'bearer' }, tls: { ca: inline(bundle) } })
      assert.deepEqual(inlineCa.tls, { ca: { provider: 'inline' } })
      const stored = await column('partners', 'slug', 'ca-inline', 'tls')
      assert.equal(open(stored.ca), bundle, 'stored sealed, byte for byte')
      const envCa = await created('/admin/partners', { slug: 'ca-env', base_urls: BASE_URLS, auth: { type: 'bearer' }, tls: { ca: { provider: 'env', ref: 'PARTNER_CA_BUNDLE' } } })
      assert.deepEqual(envCa.tls, { ca: { provider: 'env', ref: 'PARTNER_CA_BUNDLE' } })
      const fileCa = await created('/admin/partners', { slug: 'ca-file', base_urls: BASE_URLS, auth: { type: 'mtls' }, tls: { ca: { provider: 'file', ref: `${secretsDir}/ca.pem` } } })
      assert.deepEqual(fileCa.tls, { ca: { provider: 'file', ref: `${secretsDir}/ca.pem` } })

      assert.deepEqual((await call('GET', '/admin/partners/ca-inline')).json.tls, { ca: { provider: 'inline' } })
      const listed = (await call('GET', '/admin/partners')).json as Array<{ slug: string; tls: unknown }>
      assert.deepEqual(listed.filter((p) => p.slug.startsWith('ca-')).map((p) => [p.slug, p.tls]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))), [
        ['ca-env', { ca: { provider: 'env', ref: 'PARTNER_CA_BUNDLE' } }],
        ['ca-file', { ca: { provider: 'file', ref: `${secretsDir}/ca.pem` } }],
        ['ca-inline', { ca: { provider: 'inline' } }],
      ])
      const patched = await call('PATCH', '/admin/partners/ca-env', { tls: { ca: inline(pki.ca.cert) } })
      assert.equal(patched.status, 200, patched.text)
      assert.deepEqual(patched.json.tls, { ca: { provider: 'inline' } })
      const removed = await call('PATCH', '/admin/partners/ca-env', { tls: null })
      assert.equal(removed.status, 200, removed.text)
      assert.equal(removed.json.tls, null)
      assert.equal(await column('partners', 'slug', 'ca-env', 'tls'), null)
    })

    // ---- refusals ----------------------------------------------------------------------------

    REFUSED.forEach(([what, overrides, field], i) => {
      it(`refuses ${what} naming ${field}`, async () => {
        const slug = `refused-${i}`
        const body = { slug, base_urls: BASE_URLS, auth: { type: 'bearer' }, ...overrides }
        assertInvalid(await call('POST', '/admin/partners', body), field)
        assert.equal((await call('GET', `/admin/partners/${slug}`)).status, 404, 'nothing was stored')
      })
    })

    // ---- credentials -------------------------------------------------------------------------

    const credentials = (slug: string): string => `/admin/partners/${slug}/credentials`

    const MISSING: Array<[string, string, Record<string, unknown>, string]> = [
      ['an hmac partner', 'c-sumsub', { secret: inline(APP_TOKEN) }, 'signing_secret'],
      ['an hmac partner sending the app token', 'c-sumsub', { signing_secret: inline(SIGNING_SECRET) }, 'secret'],
      ['an OAuth2 partner', 'c-oauth', { client_secret: inline(CLIENT_SECRET) }, 'client_id'],
      ['an OAuth2 partner, without the client secret', 'c-oauth', { client_id: inline(CLIENT_ID) }, 'client_secret'],
      ['a header partner', 'c-header', {}, 'secret'],
      ['a header partner, secret null', 'c-header', { secret: null, signing_secret: inline(SIGNING_SECRET) }, 'secret'],
      ['an mTLS partner', 'c-mtls', { client_cert: inline(CLIENT.cert) }, 'client_key'],
      ['an mTLS partner with a header credential', 'c-mtls-header', { client_cert: inline(CLIENT.cert), client_key: inline(CLIENT.key) }, 'secret'],
      ['a jwt partner', 'c-jwt', { secret: inline(JWT_API_KEY) }, 'private_key'],
    ]
    for (const [what, slug, parts, missing] of MISSING) {
      it(`refuses a credential of ${what} without ${missing}, naming it`, async () => {
        const reply = await call('POST', credentials(slug), { name: 'incomplete', environment: 'production', ...parts })
        assertInvalid(reply, missing)
        assert.match(reply.json.error.message, new RegExp(`partner '${slug}'`))
        assert.deepEqual((await call('GET', credentials(slug))).json.filter((c: { name: string }) => c.name === 'incomplete'), [])
      })
    }

    it('accepts an OAuth2 credential with no secret, showing each part by provider (and ref) only', async () => {
      const main = await created(credentials('c-oauth'), {
        name: 'main', environment: 'production', client_id: inline(CLIENT_ID), client_secret: inline(CLIENT_SECRET),
      })
      assert.equal(main.secret, null)
      assertCredentialView(main, { secret: null, client_id: { provider: 'inline' }, client_secret: { provider: 'inline' } })
      const stored = await storedCredential(main.id)
      assert.equal(stored.secret, null)
      assert.deepEqual(stored.parts, { client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, 'stored sealed, exactly as sent')
      const refs = await created(credentials('c-oauth'), {
        name: 'by-reference', environment: 'sandbox', secret: null,
        client_id: { provider: 'file', ref: `${secretsDir}/oauth-client-id` }, client_secret: { provider: 'env', ref: 'OAUTH_CLIENT_SECRET' },
      })
      assertCredentialView(refs, {
        secret: null, client_id: { provider: 'file', ref: `${secretsDir}/oauth-client-id` }, client_secret: { provider: 'env', ref: 'OAUTH_CLIENT_SECRET' },
      })
    })

    it('accepts PEM parts inline with their line breaks, stored byte for byte', async () => {
      const mtls = await created(credentials('c-mtls'), {
        name: 'main', environment: 'production', client_cert: inline(CLIENT.cert), client_key: inline(CLIENT_KEY_CRLF),
      })
      assertCredentialView(mtls, { secret: null, client_cert: { provider: 'inline' }, client_key: { provider: 'inline' } })
      const stored = await storedCredential(mtls.id)
      assert.equal(stored.parts.client_cert, CLIENT.cert)
      assert.equal(stored.parts.client_key, CLIENT_KEY_CRLF)
      const jwt = await created(credentials('c-jwt'), {
        name: 'main', environment: 'production', secret: inline(JWT_API_KEY), private_key: inline(JWT_PRIVATE_KEY),
      })
      assertCredentialView(jwt, { secret: { provider: 'inline' }, private_key: { provider: 'inline' } })
      assert.deepEqual(await storedCredential(jwt.id).then((s) => [s.secret, s.parts]), [JWT_API_KEY, { private_key: JWT_PRIVATE_KEY }])
      const withHeader = await created(credentials('c-mtls-header'), {
        name: 'main', environment: 'production', secret: inline(HEADER_SECRET), client_cert: inline(CLIENT.cert), client_key: { provider: 'env', ref: 'MTLS_CLIENT_KEY' },
      })
      assertCredentialView(withHeader, { secret: { provider: 'inline' }, client_cert: { provider: 'inline' }, client_key: { provider: 'env', ref: 'MTLS_CLIENT_KEY' } })
    })

    const BAD_PARTS: Array<[string, Record<string, unknown>, string]> = [
      ['a signing_secret with a line break', { signing_secret: inline(`${SIGNING_SECRET}\n`) }, 'signing_secret.value'],
      ['a signing_secret with CR LF inside', { signing_secret: inline('abc\r\ndef') }, 'signing_secret.value'],
      ['a client_id with a line break', { client_id: inline('id\nX-Evil: 1') }, 'client_id.value'],
      ['a client_secret with a NUL', { client_secret: inline('secret\u0000') }, 'client_secret.value'],
      ['a client_cert with a control character other than a line break', { client_cert: inline(`${CLIENT.cert}\u0007`) }, 'client_cert.value'],
      ['a private_key with a NUL', { private_key: inline('-----BEGIN PRIVATE KEY-----\n\u0000') }, 'private_key.value'],
      ['an empty signing_secret', { signing_secret: inline('') }, 'signing_secret.value'],
      ['a signing_secret given as a bare string', { signing_secret: SIGNING_SECRET }, 'signing_secret'],
      ['a signing_secret with an unknown provider', { signing_secret: { provider: 'vault', ref: 'x' } }, 'signing_secret.provider'],
      ['a signing_secret naming one of RelayKey\'s settings', { signing_secret: { provider: 'env', ref: 'RELAYKEY_HMAC_SECRET' } }, 'signing_secret.ref'],
      ['a client_key file outside RELAYKEY_SECRET_FILES_DIR', { client_key: { provider: 'file', ref: '/etc/ssl/private/key.pem' } }, 'client_key.ref'],
      ['a part RelayKey does not know', { api_secret: inline('x') }, 'api_secret'],
      ['the stored shape of the parts', { secret_parts: {} }, 'secret_parts'],
    ]
    for (const [what, fields, field] of BAD_PARTS) {
      it(`refuses ${what} naming ${field}`, async () => {
        const reply = await call('POST', credentials('c-sumsub'), {
          name: 'bad-part', environment: 'production', secret: inline(APP_TOKEN), signing_secret: inline(SIGNING_SECRET), ...fields,
        })
        assertInvalid(reply, field)
      })
    }

    it('patches one part and keeps the others as they were', async () => {
      const main = (await call('GET', credentials('c-oauth'))).json.find((c: { name: string }) => c.name === 'main')
      const before = await storedCredential(main.id)
      const rotated = await call('PATCH', `/admin/credentials/${main.id}`, { client_secret: inline(ROTATED_CLIENT_SECRET) })
      assert.equal(rotated.status, 200, rotated.text)
      assertCredentialView(rotated.json, { secret: null, client_id: { provider: 'inline' }, client_secret: { provider: 'inline' } })
      const after = await storedCredential(main.id)
      assert.deepEqual(after.sealed.client_id, before.sealed.client_id, 'client_id untouched, not even re-sealed')
      assert.deepEqual(after.parts, { client_id: CLIENT_ID, client_secret: ROTATED_CLIENT_SECRET })
      // a patch of other fields leaves every part alone
      const renamed = await call('PATCH', `/admin/credentials/${main.id}`, { weight: 3 })
      assert.equal(renamed.status, 200, renamed.text)
      assertCredentialView(renamed.json, { secret: null, client_id: { provider: 'inline' }, client_secret: { provider: 'inline' } })
      assert.deepEqual((await storedCredential(main.id)).sealed, after.sealed)
      // a secret may be added to and taken from an OAuth2 credential, which needs none
      const withSecret = await call('PATCH', `/admin/credentials/${main.id}`, { secret: inline(HEADER_SECRET) })
      assert.equal(withSecret.status, 200, withSecret.text)
      assert.deepEqual(withSecret.json.secret, { provider: 'inline' })
      const withoutSecret = await call('PATCH', `/admin/credentials/${main.id}`, { secret: null })
      assert.equal(withoutSecret.status, 200, withoutSecret.text)
      assert.equal(withoutSecret.json.secret, null)
      assert.deepEqual(await storedCredential(main.id).then((s) => [s.secret, s.parts]), [null, { client_id: CLIENT_ID, client_secret: ROTATED_CLIENT_SECRET }])
    })

    it('removes a part patched to null, and refuses that when the partner needs the part', async () => {
      // a credential kept ready for a move from hmac to OAuth2: it holds both schemes' parts
      const cred = await created(credentials('c-sumsub'), {
        name: 'moving', environment: 'sandbox', secret: inline(APP_TOKEN), signing_secret: inline(SIGNING_SECRET),
        client_id: inline(CLIENT_ID), client_secret: { provider: 'env', ref: 'OAUTH_CLIENT_SECRET' },
      })
      assertCredentialView(cred, {
        secret: { provider: 'inline' }, signing_secret: { provider: 'inline' }, client_id: { provider: 'inline' },
        client_secret: { provider: 'env', ref: 'OAUTH_CLIENT_SECRET' },
      })
      const dropped = await call('PATCH', `/admin/credentials/${cred.id}`, { client_id: null, client_secret: null })
      assert.equal(dropped.status, 200, dropped.text)
      assertCredentialView(dropped.json, { secret: { provider: 'inline' }, signing_secret: { provider: 'inline' } })
      assert.deepEqual(await storedCredential(cred.id).then((s) => [s.secret, s.parts]), [APP_TOKEN, { signing_secret: SIGNING_SECRET }])

      assertInvalid(await call('PATCH', `/admin/credentials/${cred.id}`, { signing_secret: null }), 'signing_secret')
      assertInvalid(await call('PATCH', `/admin/credentials/${cred.id}`, { secret: null }), 'secret')
      assertInvalid(await call('PATCH', `/admin/credentials/${cred.id}`, { signing_secret: inline('two\nlines') }), 'signing_secret.value')
      const oauth = (await call('GET', credentials('c-oauth'))).json.find((c: { name: string }) => c.name === 'main')
      assertInvalid(await call('PATCH', `/admin/credentials/${oauth.id}`, { client_secret: null }), 'client_secret')
      const mtls = (await call('GET', credentials('c-mtls'))).json.find((c: { name: string }) => c.name === 'main')
      assertInvalid(await call('PATCH', `/admin/credentials/${mtls.id}`, { client_key: null }), 'client_key')
      // the refusals changed nothing
      assert.deepEqual(await storedCredential(cred.id).then((s) => [s.secret, s.parts]), [APP_TOKEN, { signing_secret: SIGNING_SECRET }])
      assert.deepEqual((await storedCredential(oauth.id)).parts, { client_id: CLIENT_ID, client_secret: ROTATED_CLIENT_SECRET })
      assert.equal((await storedCredential(mtls.id)).parts.client_key, CLIENT_KEY_CRLF)
    })

    it('refuses a change of auth that a credential of the partner could not serve, naming the credential and part', async () => {
      const partner = await created('/admin/partners', { slug: `switch-${mode}`, base_urls: { sandbox: 'https://api.switch.test' }, auth: { type: 'header', name: 'X-Key' } })
      const cred = await created(`/admin/partners/${partner.slug}/credentials`, { name: 'main', environment: 'sandbox', secret: inline(HEADER_SECRET) })
      const refused = await call('PATCH', `/admin/partners/${partner.slug}`, { auth: { type: 'hmac', preset: 'sumsub' } })
      assert.equal(refused.status, 409, refused.text)
      assert.equal(refused.json.error.code, 'conflict')
      assert.match(refused.json.error.message, new RegExp(`^auth: credential 'main' \\(${cred.id}\\) has no signing_secret`))
      assert.deepEqual((await call('GET', `/admin/partners/${partner.slug}`)).json.auth, { type: 'header', name: 'X-Key', prefix: '' }, 'unchanged')
      // the part first, then the switch
      assert.equal((await call('PATCH', `/admin/credentials/${cred.id}`, { signing_secret: inline(SIGNING_SECRET) })).status, 200)
      const switched = await call('PATCH', `/admin/partners/${partner.slug}`, { auth: { type: 'hmac', preset: 'sumsub' } })
      assert.equal(switched.status, 200, switched.text)
      assert.equal(switched.json.auth.preset, 'sumsub')
    })

    it('refuses an hmac scheme that sets one header twice, and a claim named __proto__', async () => {
      const base = { base_urls: { sandbox: 'https://api.twice.test' } }
      assertInvalid(await call('POST', '/admin/partners', { ...base, slug: `twice-${mode}`, auth: { type: 'hmac', canonical: ['timestamp', 'body'], timestamp_header: 'X-Sig', signature_header: 'x-sig' } }), 'auth.signature_header')
      assertInvalid(await call('POST', '/admin/partners', { ...base, slug: `proto-${mode}`, auth: { type: 'jwt', algorithm: 'ES256', claims: JSON.parse('{"__proto__": "x"}') } }), 'auth.claims.__proto__')
    })

    it('shows every credential of every partner with its parts by provider and ref only', async () => {
      const hmac = await created(credentials('c-hmac-keyonly'), { name: 'main', environment: 'production', signing_secret: inline(SIGNING_SECRET) })
      assertCredentialView(hmac, { secret: null, signing_secret: { provider: 'inline' } })
      await created(credentials('c-header'), { name: 'main', environment: 'production', secret: inline(HEADER_SECRET) })
      const ALL_PARTS = new Set(['secret', 'signing_secret', 'client_id', 'client_secret', 'client_cert', 'client_key', 'private_key'])
      let seen = 0
      for (const slug of ['c-sumsub', 'c-hmac-keyonly', 'c-oauth', 'c-header', 'c-mtls', 'c-mtls-header', 'c-jwt']) {
        const list = await call('GET', credentials(slug))
        assert.equal(list.status, 200)
        assert.ok(list.json.length > 0, slug)
        for (const credential of list.json as Array<Record<string, unknown>>) {
          for (const [field, value] of Object.entries(credential)) {
            if (!ALL_PARTS.has(field) || value === null) continue
            seen++
            const v = value as { provider: string; ref?: string }
            if (v.provider === 'inline') assert.deepEqual(v, { provider: 'inline' }, `${slug}/${String(credential.name)}.${field}`)
            else assert.deepEqual(Object.keys(v).sort(), ['provider', 'ref'], `${slug}/${String(credential.name)}.${field}`)
          }
        }
      }
      assert.ok(seen >= 12, `secret parts were shown (${seen})`)
    })
  })
}
