// What a partner auth scheme that works per attempt (hmac, jwt, oauth2_client_credentials)
// offers the exchange. Each attempt, retries included, is signed afresh: a new timestamp,
// nonce and signature, or the access token current at that moment. The static schemes
// (header, bearer, query) need none of this and keep their precomputed header.
export interface AttemptSigner {
  /** the body is part of what is signed: it is read whole (up to maxBodyBytes) before the first attempt */
  readonly signsBody: boolean
  readonly maxBodyBytes: number
  /** lowercase names of the headers the signer sets: a client's own are dropped */
  readonly ownedHeaders: ReadonlySet<string>
  /** null: sign() may run now; else a promise that settles once it may (an access token is fetched) */
  ready (now: number): Promise<void> | null
  /**
   * HOT PATH for signing partners: pushes this attempt's auth headers onto `headers` (a flat
   * name, value list that already holds the client's headers). `target` is the path with its
   * query exactly as sent; `body` the bytes sent (null: none).
   */
  sign (method: string, target: string, body: Buffer | null, headers: string[], now: number): void
  /**
   * The partner answered 401 to an attempt this signer signed: true when trying once more may
   * pass (an access token was dropped and a fresh one will be fetched), false otherwise.
   */
  refused (sent: readonly string[]): boolean
  /** a secret the attempt carried that changes per attempt (an access token), to redact from the answer's headers; null: none */
  carriedSecret (sent: readonly string[]): string | null
}

/** `name` (lowercase) in a flat header list, or '' */
export function headerValue (headers: readonly string[], name: string): string {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length === name.length && headers[i]!.toLowerCase() === name) return headers[i + 1]!
  }
  return ''
}
