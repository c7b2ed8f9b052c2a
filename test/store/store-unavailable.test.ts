// Which store failures are "unavailable" (503, try again) rather than a fault of ours (500).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import postgres from 'postgres'
import { isStoreUnavailable, storeErrorCode } from '../../src/store/store-unavailable.js'
import { ValidationError } from '../../src/errors.js'

function coded (code: string): Error {
  return Object.assign(new Error(`failed at 127.0.0.1:5432 (${code})`), { code })
}

describe('store unavailable', () => {
  it('counts connection failures, stalls, a server that cannot serve now, and a held SQLite lock', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'CONNECTION_CLOSED', 'CONNECT_TIMEOUT', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED', '08006', '57P01', '57P03', '53300']) {
      assert.ok(isStoreUnavailable(coded(code)), code)
    }
    // node's connect tries every address of a name and reports them together
    const both = new AggregateError([coded('EADDRNOTAVAIL'), coded('ECONNREFUSED')], 'connect failed')
    assert.ok(isStoreUnavailable(both))
    assert.equal(storeErrorCode(both), 'ECONNREFUSED', 'names the failure that counted')
  })

  it('does not count what retrying cannot fix', () => {
    assert.equal(isStoreUnavailable(coded('23505')), false) // unique violation
    assert.equal(isStoreUnavailable(coded('42P01')), false) // undefined table: a schema problem
    assert.equal(isStoreUnavailable(coded('SQLITE_CONSTRAINT_UNIQUE')), false)
    assert.equal(isStoreUnavailable(new ValidationError('name', 'name: required')), false)
    assert.equal(isStoreUnavailable(new TypeError('x is undefined')), false)
    assert.equal(isStoreUnavailable(null), false)
    assert.equal(storeErrorCode(new TypeError('x')), 'unknown')
  })

  it('recognises the errors postgres.js itself raises for a closed connection', async () => {
    const sql = postgres('postgres://127.0.0.1:9/none', { max: 1, connect_timeout: 1, onnotice: () => {} })
    const err = await sql`SELECT 1`.then(() => null, (e: unknown) => e)
    await sql.end({ timeout: 0 })
    assert.ok(isStoreUnavailable(err), `${storeErrorCode(err)}: ${String(err)}`)
  })
})
