// The worker's OAuth2 token sources, one per credential, kept across key-context rebuilds (a
// cache refresh must not fetch a new token). A credential whose client id, secret or token
// settings changed gets a new source, and so a new token.
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { AccessTokenSource, type TokenEndpoint } from './access-token-source.js'
import type { SharedTokens, TokenSeal } from './shared-tokens.js'

export class TokenSources {
  readonly #shared: SharedTokens
  readonly #seal: TokenSeal
  readonly #logger: Logger
  readonly #sources = new Map<string, { fingerprint: string; source: AccessTokenSource }>()

  constructor (shared: SharedTokens, seal: TokenSeal, logger: Logger) {
    this.#shared = shared
    this.#seal = seal
    this.#logger = logger
  }

  forCredential (credentialId: string, endpoint: TokenEndpoint): AccessTokenSource {
    const { auth, clientId, clientSecret } = endpoint
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([auth.token_url, auth.scope, auth.audience, auth.client_auth, clientId, clientSecret])).digest('hex')
    const known = this.#sources.get(credentialId)
    if (known !== undefined && known.fingerprint === fingerprint) {
      known.source.useEndpoint(endpoint)
      return known.source
    }
    // a changed client (rotated secret, other scope) must not take the old client's shared token;
    // the label is keyed, so the shared store's key says nothing of the client secret
    const sharedId = `${credentialId}.${this.#seal.label(fingerprint)}`
    const source = new AccessTokenSource(sharedId, endpoint, this.#shared, this.#logger)
    this.#sources.set(credentialId, { fingerprint, source })
    return source
  }

  close (): Promise<void> {
    return this.#shared.close()
  }
}
