// A credential's auth, compiled once per key context: its secret parts resolved and checked,
// the static header or query pair precomputed, the per-attempt signer built, the mTLS pool
// chosen. Throws (with a message that never holds a secret) when the credential cannot serve
// its partner's auth; the caller leaves it out of rotation.
import { X509Certificate, createPrivateKey } from 'node:crypto'
import type { Pool } from 'undici'
import type { Credential, Partner, SecretPart, StoredSecret } from '../store/model.js'
import type { SecretResolver } from '../secrets/secret-resolver.js'
import type { UpstreamPools } from '../http/upstream-pools.js'
import type { AttemptSigner } from './attempt-signer.js'
import { HmacSigner } from './hmac-signer.js'
import { JwtSigner } from './jwt-signer.js'
import { OAuth2Signer } from './oauth2-signer.js'
import type { TokenSources } from './token-sources.js'

export interface CredentialAuth {
  /** header to inject (lowercase), or null */
  headerName: string | null
  headerValue: string
  /** `name=value`, already encoded, for query auth */
  queryPair: string | null
  /** the secret values as they may come back in a response header: redacted there */
  secretForms: string[]
  signer: AttemptSigner | null
  /** the credential's own pool (mTLS), or null for the partner's */
  pool: Pool | null
}

export interface CredentialAuthDeps {
  secrets: SecretResolver
  /** null with tokens null: only check the credential (the start-up check); no pool or token source is built */
  pools: UpstreamPools | null
  tokens: TokenSources | null
}

/** what node:http and undici accept in a header value (RFC 9110 field-value, obs-text included) */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
/** what encodeURIComponent throws on */
const UNPAIRED_SURROGATE = /\p{Cs}/u

export class CredentialAuthError extends Error {
  override readonly name = 'CredentialAuthError'
}

/** `ca`: the partner's CA bundle, resolved (null: the system's CAs) */
export async function compileCredentialAuth (partner: Partner, credential: Credential, ca: string | null, deps: CredentialAuthDeps): Promise<CredentialAuth> {
  const auth = partner.auth
  const secret = credential.secret === null ? null : await deps.secrets.resolve(credential.secret)
  if (secret !== null && (auth.type === 'query' ? UNPAIRED_SURROGATE.test(secret) : !HEADER_VALUE.test(secret))) {
    // an env or file secret, or one stored before the partner's auth type changed, that its
    // auth cannot carry would fail every request at the HTTP client and open the breakers
    throw new CredentialAuthError(`credential secret has characters ${auth.type === 'query' ? 'a query string' : 'an HTTP header'} cannot carry`)
  }
  const part = (name: SecretPart): Promise<string> => resolvePart(credential, name, deps.secrets)
  const needSecret = (): string => {
    if (secret === null) throw new CredentialAuthError(`partner auth ${auth.type} needs the credential's secret, which it has none of`)
    return secret
  }
  const forms = secret === null ? [] : secretForms(secret)
  const plain: CredentialAuth = { headerName: null, headerValue: '', queryPair: null, secretForms: forms, signer: null, pool: null }
  switch (auth.type) {
    case 'header': return { ...plain, headerName: auth.name.toLowerCase(), headerValue: auth.prefix + needSecret() }
    case 'bearer': return { ...plain, headerName: 'authorization', headerValue: `Bearer ${needSecret()}` }
    case 'query': return { ...plain, queryPair: `${encodeURIComponent(auth.name)}=${encodeURIComponent(needSecret())}` }
    case 'hmac': {
      const signingSecret = await part('signing_secret')
      if (auth.secret_header !== null) needSecret()
      return { ...plain, secretForms: [...forms, ...secretForms(signingSecret)], signer: new HmacSigner(auth, signingSecret, secret) }
    }
    case 'jwt': {
      if (auth.secret_header !== null || auth.subject_is_secret) needSecret()
      let signer: JwtSigner
      try {
        signer = new JwtSigner(auth, await part('private_key'), secret)
      } catch (err) {
        if (err instanceof CredentialAuthError) throw err
        throw new CredentialAuthError(`private_key is not usable: ${(err as Error).message.replace(/\n[\s\S]*/, '')}`)
      }
      return { ...plain, signer }
    }
    case 'oauth2_client_credentials': {
      const clientId = await part('client_id')
      const clientSecret = await part('client_secret')
      if (deps.tokens === null || deps.pools === null) return plain
      const tokenOrigin = new URL(auth.token_url).origin
      const source = deps.tokens.forCredential(credential.id, {
        auth,
        clientId,
        clientSecret,
        dispatcher: deps.pools.get(tokenOrigin, { connectTimeoutMs: partner.timeouts.connect_ms, ca }),
        timeoutMs: partner.timeouts.request_ms,
      })
      return { ...plain, secretForms: [...forms, ...secretForms(clientSecret)], signer: new OAuth2Signer(source) }
    }
    case 'mtls': {
      const cert = await part('client_cert')
      const key = await part('client_key')
      try {
        if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) throw new Error('the key is not the certificate\'s')
      } catch (err) {
        throw new CredentialAuthError(`client_cert or client_key is not usable: ${(err as Error).message.replace(/\n[\s\S]*/, '')}`)
      }
      if (deps.pools === null) return plain
      const origin = new URL(partner.base_urls[credential.environment]!).origin
      const pool = deps.pools.get(origin, { connectTimeoutMs: partner.timeouts.connect_ms, ca, cert, key })
      if (auth.header === null) return { ...plain, pool }
      return { ...plain, pool, headerName: auth.header.name.toLowerCase(), headerValue: auth.header.prefix + needSecret() }
    }
  }
}

async function resolvePart (credential: Credential, name: SecretPart, secrets: SecretResolver): Promise<string> {
  const stored: StoredSecret | undefined = credential.secret_parts[name]
  if (stored === undefined) throw new CredentialAuthError(`the partner's auth needs the credential's ${name}, which it has none of`)
  return await secrets.resolve(stored)
}

/**
 * The secret, and its URL-encoded form when that differs. A secret shorter than 8 characters is
 * left out: replacing it would mangle unrelated header values, and nothing that short is safe
 * to share a credential with anyway.
 */
function secretForms (secret: string): string[] {
  if (secret.length < 8) return []
  const encoded = encodeURIComponent(secret)
  return encoded === secret ? [secret] : [secret, encoded]
}
