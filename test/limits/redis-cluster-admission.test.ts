// The AdmissionStore contract on a real three-master Redis Cluster: RedisAdmissionStore in
// cluster mode, where a key's owner group and its partner's credential quotas live in different
// hash slots (often on different masters) and are decided in two calls.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createRedisClient } from '../../src/store/redis/redis-client.js'
import { RedisAdmissionStore } from '../../src/store/redis/redis-admission-store.js'
import { redisCommand, type RespValue } from '../helpers/redis-command.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { runAdmissionStoreContract } from './admission-store.contract.js'

let cluster: RedisCluster

before(async () => {
  cluster = await startRedisCluster()
}, { timeout: 60_000 })

after(async () => {
  await cluster?.stop()
})

/** deletes every key under `prefix` on every master; SCAN is per node in a cluster */
async function deletePrefix (prefix: string): Promise<void> {
  for (const { port } of cluster.nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await redisCommand(port, ['SCAN', cursor, 'MATCH', `${prefix}:*`, 'COUNT', '1000']) as [string, string[]]
      for (const key of keys) await redisCommand(port, ['DEL', key])
      cursor = next
    } while (cursor !== '0')
  }
}

runAdmissionStoreContract('redis cluster', async (clock) => {
  const prefix = `rk-test-${randomBytes(5).toString('hex')}`
  const store = new RedisAdmissionStore(createRedisClient(cluster.url), { prefix, cluster: true, now: () => clock.now })
  return {
    store,
    async cleanup () {
      try {
        await deletePrefix(prefix)
      } finally {
        await store.close()
      }
    },
  }
})

describe('redis cluster admission keys', () => {
  it('leave nothing behind outside the prefixes the cases cleaned up', async () => {
    for (const { port } of cluster.nodes) {
      const keys = await redisCommand(port, ['KEYS', '*']) as RespValue[]
      assert.deepEqual(keys, [], `keys left on 127.0.0.1:${port}`)
    }
  })
})
