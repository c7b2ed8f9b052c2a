// The Redis admission store on a single Redis (the shared one on 127.0.0.1:6379, or
// RELAYKEY_TEST_REDIS_URL): the shared contract, each store under a key prefix of its own,
// whose keys are deleted afterwards.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { RedisAdmissionStore } from '../../src/store/redis/redis-admission-store.js'
import { runAdmissionStoreContract } from './admission-store.contract.js'
import { deleteKeys } from '../helpers/redis-keys.js'
import { TEST_REDIS_URL } from '../helpers/relaykey-process.js'

const REDIS_URL = TEST_REDIS_URL
const RUN_PREFIX = `rktest-admission-${randomBytes(6).toString('hex')}`
let opened = 0

runAdmissionStoreContract('redis', async (clock) => {
  const prefix = `${RUN_PREFIX}:${++opened}`
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  const store = new RedisAdmissionStore(redis, { prefix, cluster: false, now: () => clock.now })
  return {
    store,
    async cleanup () {
      try {
        await deleteKeys(redis, prefix)
      } finally {
        await store.close()
      }
    },
  }
})
