// A fresh PostgreSQL database per test run, dropped afterwards.
import { randomBytes } from 'node:crypto'
import postgres from 'postgres'

export const POSTGRES_ADMIN_URL = process.env.RELAYKEY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

export interface TestDatabase {
  url: string
  name: string
  drop(): Promise<void>
}

export async function createTestDatabase (): Promise<TestDatabase> {
  const name = `relaykey_test_${randomBytes(6).toString('hex')}`
  const admin = postgres(POSTGRES_ADMIN_URL, { max: 1, onnotice: () => {} })
  await admin.unsafe(`CREATE DATABASE ${name}`)
  await admin.end()
  const base = new URL(POSTGRES_ADMIN_URL)
  base.pathname = `/${name}`
  return {
    url: base.toString(),
    name,
    async drop () {
      const sql = postgres(POSTGRES_ADMIN_URL, { max: 1, onnotice: () => {} })
      await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await sql.end()
    },
  }
}
