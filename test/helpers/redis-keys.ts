// Cleaning up after a test that used the shared Redis under a prefix of its own.
import type { Redis } from 'ioredis'

/** deletes every key under `prefix:` (SCAN, so it never blocks the server) */
export async function deleteKeys (redis: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
}
