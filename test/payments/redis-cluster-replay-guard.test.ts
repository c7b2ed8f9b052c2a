// The replay guard contract on a real three-master Redis Cluster: claims of different payments
// spread over the slots, and a payment's claim is one key in one slot.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { RedisReplayGuard } from '../../src/store/redis/redis-replay-guard.js'
import { createRedisClient } from '../../src/store/redis/redis-client.js'
import { redisCommand } from '../helpers/redis-command.js'
import { useRedisCluster } from '../helpers/redis-cluster.js'
import { runReplayGuardContract } from './replay-guard.contract.js'

const cluster = useRedisCluster()

/** SCAN is per node in a cluster */
async function keysOn (port: number, prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redisCommand(port, ['SCAN', cursor, 'MATCH', `${prefix}:*`, 'COUNT', '1000']) as [string, string[]]
    found.push(...keys)
    cursor = next
  } while (cursor !== '0')
  return found
}

async function deletePrefix (prefix: string): Promise<void> {
  for (const { port } of cluster().nodes) {
    for (const key of await keysOn(port, prefix)) await redisCommand(port, ['DEL', key])
  }
}

runReplayGuardContract('redis cluster', async () => {
  const prefix = `rk-test-${randomBytes(5).toString('hex')}`
  const a = createRedisClient(cluster().url)
  const b = createRedisClient(cluster().url)
  return {
    first: new RedisReplayGuard(a, { prefix }),
    second: new RedisReplayGuard(b, { prefix }),
    async cleanup () {
      try {
        await deletePrefix(prefix)
      } finally {
        a.disconnect()
        b.disconnect()
      }
    },
  }
})

describe('redis cluster replay guard keys', () => {
  it('spread the claims of different payments over the masters', async () => {
    const prefix = `rk-test-${randomBytes(5).toString('hex')}`
    const redis = createRedisClient(cluster().url)
    try {
      const guard = new RedisReplayGuard(redis, { prefix })
      for (let i = 0; i < 30; i++) assert.equal(await guard.claim(createHash('sha256').update(`p${i}`).digest('hex'), 60_000), true)
      const perNode: number[] = []
      for (const { port } of cluster().nodes) perNode.push((await keysOn(port, prefix)).length)
      assert.equal(perNode.reduce((a, b) => a + b, 0), 30)
      assert.ok(perNode.filter((n) => n > 0).length > 1, `claims per master: ${perNode.join(', ')}`)
    } finally {
      await deletePrefix(prefix)
      redis.disconnect()
    }
  })
})
