// The AdmissionStore contract on a real three-master Redis Cluster: RedisAdmissionStore in
// cluster mode, where a key's owner group and its partner's credential quotas live in different
// hash slots (often on different masters) and are decided in two calls.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createRedisClient } from '../../src/store/redis/redis-client.js'
import { RedisAdmissionStore } from '../../src/store/redis/redis-admission-store.js'
import { redisCommand, type RespValue } from '../helpers/redis-command.js'
import { deleteClusterPrefix, useRedisCluster } from '../helpers/redis-cluster.js'
import { runAdmissionStoreContract } from './admission-store.contract.js'

const cluster = useRedisCluster()

runAdmissionStoreContract('redis cluster', async (clock) => {
  const prefix = `rk-test-${randomBytes(5).toString('hex')}`
  const store = new RedisAdmissionStore(createRedisClient(cluster().url), { prefix, cluster: true, now: () => clock.now })
  return {
    store,
    async cleanup () {
      try {
        await deleteClusterPrefix(cluster(), prefix)
      } finally {
        await store.close()
      }
    },
  }
})

describe('redis cluster admission, many owners at once', () => {
  it('decides requests of owners on different masters made in one event-loop turn (auto-pipelining grouped them by the key count and failed them all)', async () => {
    const prefix = `rk-test-${randomBytes(5).toString('hex')}`
    // a data-plane client, as the workers open it: no offline queue, so first wait until it is ready
    const client = createRedisClient(cluster().url, { commandTimeoutMs: 2000 })
    await once(client, 'ready')
    const store = new RedisAdmissionStore(client, { prefix, cluster: true })
    try {
      const decisions = Array.from({ length: 24 }, (_, i) => store.admit({
        limits: [],
        budgets: [{ name: 'key', subject: `k${i}`, monthly: 10 }],
        cost: 1,
        credentials: [],
        now: Date.now(),
        groups: { owner: `key:k${i}`, partner: 'p' },
      }))
      const results = await Promise.all(decisions)
      assert.equal(results.filter((r) => r.ok).length, 24)
      const topUps = await store.topUp(Array.from({ length: 24 }, (_, i) => ({
        subject: { kind: 'budget' as const, owner: `key:t${i}`, spec: { name: 'key' as const, subject: `t${i}`, monthly: 3200 }, month: '2026-12' },
        want: 10,
        step: 1,
      })), Date.now())
      assert.deepEqual(topUps.map((r) => r.granted), Array.from({ length: 24 }, () => 10))
    } finally {
      await deleteClusterPrefix(cluster(), prefix)
      await store.close()
    }
  })
})

describe('redis cluster admission keys', () => {
  it('leave nothing behind outside the prefixes the cases cleaned up', async () => {
    for (const { port } of cluster().nodes) {
      const keys = await redisCommand(port, ['KEYS', '*']) as RespValue[]
      assert.deepEqual(keys, [], `keys left on 127.0.0.1:${port}`)
    }
  })
})
