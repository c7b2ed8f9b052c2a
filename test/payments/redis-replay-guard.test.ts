// The Redis replay guard on a single Redis (the shared one on 127.0.0.1:6379, or
// RELAYKEY_TEST_REDIS_URL): the shared contract through two connections, under a key prefix of
// this run whose keys are deleted afterwards, and the key's shape.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { Redis } from 'ioredis'
import { RedisReplayGuard } from '../../src/store/redis/redis-replay-guard.js'
import { runReplayGuardContract } from './replay-guard.contract.js'
import { deleteKeys } from '../helpers/redis-keys.js'
import { TEST_REDIS_URL } from '../helpers/relaykey-process.js'

const REDIS_URL = TEST_REDIS_URL
const RUN_PREFIX = `rktest-payments-${randomBytes(6).toString('hex')}`
let opened = 0

runReplayGuardContract('redis', async () => {
  const prefix = `${RUN_PREFIX}:${++opened}`
  const a = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  const b = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  return {
    first: new RedisReplayGuard(a, { prefix }),
    second: new RedisReplayGuard(b, { prefix }),
    async cleanup () {
      try {
        await deleteKeys(a, prefix)
      } finally {
        a.disconnect()
        b.disconnect()
      }
    },
  }
})

describe('redis replay guard keys', () => {
  it('are one per payment under the prefix, hash-tagged by the payment, expiring with the claim', async () => {
    const prefix = `${RUN_PREFIX}:keys`
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
    try {
      const key = 'ab'.repeat(32)
      assert.equal(await new RedisReplayGuard(redis, { prefix }).claim(key, 90_000), true)
      assert.deepEqual(await redis.keys(`${prefix}:*`), [`${prefix}:{payment:${key}}`])
      const ttl = await redis.pttl(`${prefix}:{payment:${key}}`)
      assert.ok(ttl > 85_000 && ttl <= 90_000, String(ttl))
    } finally {
      await deleteKeys(redis, prefix)
      redis.disconnect()
    }
  })
})
