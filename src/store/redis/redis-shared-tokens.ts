// OAuth2 access tokens shared through Redis by every node (partner-auth/shared-tokens.ts). The
// token and its claim share a hash tag, so they live on one Redis Cluster slot.
import type { RedisClient } from './redis-client.js'
import { tokenHash, type CachedToken, type SharedTokens, type TokenSeal } from '../../partner-auth/shared-tokens.js'

const DROP_IF_SAME = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

export class RedisSharedTokens implements SharedTokens {
  readonly #redis: RedisClient
  readonly #prefix: string
  readonly #seal: TokenSeal

  constructor (redis: RedisClient, prefix: string, seal: TokenSeal) {
    this.#redis = redis
    this.#prefix = prefix
    this.#seal = seal
  }

  #key (id: string): string {
    return `${this.#prefix}oauth2:{${id}}`
  }

  async read (id: string): Promise<CachedToken | null> {
    const sealed = await this.#redis.get(this.#key(id))
    return sealed === null ? null : this.#seal.open(sealed)
  }

  async claim (id: string, ms: number): Promise<boolean> {
    return await this.#redis.set(`${this.#key(id)}:claim`, '1', 'PX', Math.max(1, Math.ceil(ms)), 'NX') === 'OK'
  }

  async write (id: string, token: CachedToken): Promise<void> {
    const ttl = token.expiresAt - Date.now()
    if (ttl > 0) await this.#redis.set(this.#key(id), this.#seal.seal(token), 'PX', Math.ceil(ttl))
    await this.release(id)
  }

  async release (id: string): Promise<void> {
    await this.#redis.del(`${this.#key(id)}:claim`)
  }

  async drop (id: string, token: string): Promise<void> {
    await this.#redis.eval(DROP_IF_SAME, 1, this.#key(id), `h.${tokenHash(token)}.`)
  }

  async close (): Promise<void> {}
}
