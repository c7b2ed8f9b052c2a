// Distributed mode for a scenario: a fresh PostgreSQL database and a Redis key prefix of its
// own on the local servers, the secrets that mode requires, and the clean-up of both when the
// group closes (after RelayKey stopped, since RelayKey is started later and stopped earlier).
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import type { ServiceGroup } from './service-group.js'

/** superuser URL of the `postgres` database: fresh databases are created and dropped from it */
export const BENCH_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres'
export const BENCH_REDIS_URL = 'redis://127.0.0.1:6379'

export interface DistributedStores {
  /** DATABASE_URL, REDIS_URL, RELAYKEY_REDIS_PREFIX and the secrets, for startRelayKey's env */
  env: Record<string, string>
  /** every Redis key of this run starts with `${prefix}:` */
  prefix: string
  /** a client for the scenario's own checks (not RelayKey's) */
  redis: Redis
  /** how many keys of this run match `${prefix}:${pattern}` (SCAN, so safe on a shared server) */
  countKeys (pattern: string): Promise<number>
  /** the integer values of this run's keys matching `${prefix}:${pattern}`, by key */
  readKeys (pattern: string): Promise<Map<string, number>>
  /** the pids of the PostgreSQL backends connected to this run's database (their CPU is ours) */
  databaseBackends (): Promise<number[]>
}

export async function openDistributedStores (group: ServiceGroup): Promise<DistributedStores> {
  const id = randomBytes(6).toString('hex')
  const database = `relaykey_bench_${id}`
  await onPostgres(`CREATE DATABASE ${database}`)
  group.defer(`drop database ${database}`, () => onPostgres(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))

  const prefix = `relaykey-bench-${id}`
  const redis = new Redis(BENCH_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on('error', () => {}) // a failed command rejects; the event alone must not crash the driver
  await redis.connect()
  group.defer(`delete Redis keys ${prefix}:*`, async () => {
    try {
      await eachKeyBatch(redis, `${prefix}:*`, async (keys) => { await redis.unlink(...keys) })
    } finally {
      redis.disconnect()
    }
  })

  const url = new URL(BENCH_POSTGRES_URL)
  url.pathname = `/${database}`
  return {
    env: {
      DATABASE_URL: url.toString(),
      REDIS_URL: BENCH_REDIS_URL,
      RELAYKEY_REDIS_PREFIX: prefix,
      RELAYKEY_HMAC_SECRET: randomBytes(32).toString('base64url'),
      RELAYKEY_MASTER_KEY: randomBytes(32).toString('hex'),
    },
    prefix,
    redis,
    async databaseBackends () {
      const sql = postgres(BENCH_POSTGRES_URL, { max: 1, onnotice: () => {} })
      try {
        const rows = await sql<Array<{ pid: number }>>`SELECT pid FROM pg_stat_activity WHERE datname = ${database}`
        return rows.map((r) => r.pid)
      } finally {
        await sql.end()
      }
    },
    async countKeys (pattern) {
      let n = 0
      await eachKeyBatch(redis, `${prefix}:${pattern}`, (keys) => { n += keys.length })
      return n
    },
    async readKeys (pattern) {
      const read = new Map<string, number>()
      await eachKeyBatch(redis, `${prefix}:${pattern}`, async (keys) => {
        const values = await redis.mget(...keys)
        for (let i = 0; i < keys.length; i++) read.set(keys[i]!, Number(values[i] ?? 0))
      })
      return read
    },
  }
}

async function onPostgres (statement: string): Promise<void> {
  const sql = postgres(BENCH_POSTGRES_URL, { max: 1, onnotice: () => {} })
  try {
    await sql.unsafe(statement)
  } finally {
    await sql.end()
  }
}

async function eachKeyBatch (redis: Redis, match: string, use: (keys: string[]) => Promise<void> | void): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000)
    if (keys.length > 0) await use(keys)
    cursor = next
  } while (cursor !== '0')
}
