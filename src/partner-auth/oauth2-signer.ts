// `oauth2_client_credentials` partner auth: each attempt carries the credential's current
// access token (access-token-source.ts). A 401 drops the token it carried, so the exchange's
// one retry goes with a fresh one.
import type { AttemptSigner } from './attempt-signer.js'
import { headerValue } from './attempt-signer.js'
import type { AccessTokenSource } from './access-token-source.js'

const OWNED = new Set(['authorization'])

export class OAuth2Signer implements AttemptSigner {
  readonly signsBody = false
  readonly maxBodyBytes = Infinity
  readonly ownedHeaders: ReadonlySet<string> = OWNED
  readonly #source: AccessTokenSource

  constructor (source: AccessTokenSource) {
    this.#source = source
  }

  ready (now: number): Promise<void> | null {
    return this.#source.ready(now)
  }

  sign (_method: string, _target: string, _body: Buffer | null, headers: string[]): void {
    headers.push('authorization', 'Bearer ' + this.#source.token())
  }

  carriedSecret (sent: readonly string[]): string | null {
    const value = headerValue(sent, 'authorization')
    return value.startsWith('Bearer ') ? value.slice(7) : null
  }

  refused (sent: readonly string[]): boolean {
    const token = this.carriedSecret(sent)
    if (token === null) return false
    this.#source.drop(token)
    return true
  }
}
