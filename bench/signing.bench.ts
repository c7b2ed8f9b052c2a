// What signing costs per request, for each per-attempt partner auth: the HMAC of the Sumsub
// preset (timestamp + method + path + body) and a request JWT (ES256 and RS256, Fireblocks'
// claims with the body's SHA-256), over a 2 KiB JSON body, beside the static header scheme's
// zero (its header is precomputed once per key context).
// Run: npm run bench:signing
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { Bench } from 'tinybench'
import { HmacSigner } from '../src/partner-auth/hmac-signer.js'
import { JwtSigner } from '../src/partner-auth/jwt-signer.js'
import type { HmacAuth, JwtAuth } from '../src/store/model.js'

const SUMSUB: HmacAuth = {
  type: 'hmac', preset: 'sumsub', algorithm: 'sha256', encoding: 'hex', canonical: ['timestamp', 'method', 'path', 'body'],
  separator: '', timestamp_unit: 's', timestamp_header: 'x-app-access-ts', nonce_header: null, signature_header: 'x-app-access-sig',
  signature_prefix: '', secret_header: { name: 'x-app-token', prefix: '' }, max_body_bytes: 10 * 1024 * 1024,
}
const jwt = (algorithm: 'RS256' | 'ES256'): JwtAuth => ({
  type: 'jwt', preset: null, algorithm, header: { name: 'authorization', prefix: 'Bearer ' }, secret_header: { name: 'x-api-key', prefix: '' },
  expires_in_seconds: 30, path_claim: 'uri', nonce_claim: 'nonce', body_hash_claim: 'bodyHash', subject_is_secret: true, claims: {},
  key_id: null, max_body_bytes: 10 * 1024 * 1024,
})
const pem = (type: 'rsa' | 'ec'): string => (type === 'rsa'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 })
  : generateKeyPairSync('ec', { namedCurve: 'P-256' })).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

const body = Buffer.from(JSON.stringify({ externalUserId: 'user-1', info: { notes: randomBytes(1000).toString('hex') } }))
const target = '/resources/applicants?levelName=basic-kyc-level'
const signers = {
  'hmac (sumsub preset)': new HmacSigner(SUMSUB, 'signing-secret-0123456789abcdef', 'sbx:app-token'),
  'jwt ES256 (body hash, nonce)': new JwtSigner(jwt('ES256'), pem('ec'), 'api-key-0123456789'),
  'jwt RS256 (body hash, nonce)': new JwtSigner(jwt('RS256'), pem('rsa'), 'api-key-0123456789'),
}

const bench = new Bench({ time: 1000 })
for (const [name, signer] of Object.entries(signers)) {
  bench.add(name, () => {
    const headers: string[] = ['content-type', 'application/json']
    signer.sign('POST', target, body, headers, Date.now())
  })
}
await bench.run()
console.log(`signing one POST of ${body.length} bytes (${process.version})`)
console.table(bench.tasks.map((t) => ({ signer: t.name, 'µs per request': ((t.result as { latency: { mean: number } }).latency.mean * 1000).toFixed(2) })))
