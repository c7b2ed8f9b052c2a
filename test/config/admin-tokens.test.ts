// RELAYKEY_ADMIN_TOKENS / RELAYKEY_ADMIN_TOKENS_FILE: what is accepted, and that every refusal
// names the entry and field without ever quoting a token.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/config.js'
import { configRefusal } from '../helpers/config-refusal.js'

const WRITE = 'ops-token-0123456789abcdef'
const READ = 'auditor-token-0123456789abcdef'
const DISTRIBUTED = {
  DATABASE_URL: 'postgres://x@127.0.0.1/x',
  REDIS_URL: 'redis://127.0.0.1:6379',
  RELAYKEY_HMAC_SECRET: 'h'.repeat(32),
}


describe('named admin tokens', () => {
  it('reads them from RELAYKEY_ADMIN_TOKENS, and a write token stands in for RELAYKEY_ADMIN_TOKEN in distributed mode', () => {
    const config = loadConfig({ ...DISTRIBUTED, RELAYKEY_ADMIN_TOKENS: JSON.stringify([{ name: 'ops', token: WRITE, scope: 'write' }, { name: 'auditor', token: READ, scope: 'read' }]) })
    assert.equal(config.adminToken, null)
    assert.deepEqual(config.adminTokens, [{ name: 'ops', token: WRITE, scope: 'write' }, { name: 'auditor', token: READ, scope: 'read' }])
  })

  it('reads them from RELAYKEY_ADMIN_TOKENS_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-tokens-'))
    try {
      const file = join(dir, 'tokens.json')
      writeFileSync(file, JSON.stringify([{ name: 'ci', token: WRITE, scope: 'write' }]))
      assert.deepEqual(loadConfig({ RELAYKEY_ADMIN_TOKENS_FILE: file }).adminTokens, [{ name: 'ci', token: WRITE, scope: 'write' }])
      assert.match(configRefusal({ RELAYKEY_ADMIN_TOKENS_FILE: join(dir, 'missing.json') }).message, /^RELAYKEY_ADMIN_TOKENS_FILE: cannot be read \(ENOENT\)/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('needs a write token in distributed mode: read tokens alone are not enough', () => {
    const err = configRefusal({ ...DISTRIBUTED, RELAYKEY_ADMIN_TOKENS: JSON.stringify([{ name: 'auditor', token: READ, scope: 'read' }]) })
    assert.equal(err.variable, 'RELAYKEY_ADMIN_TOKEN')
  })

  for (const [why, value, message] of [
    ['not JSON', '{oops', /must be a JSON array/],
    ['not an array', JSON.stringify({ name: 'ops' }), /non-empty JSON array/],
    ['an unknown field', JSON.stringify([{ name: 'ops', token: WRITE, scope: 'write', admin: true }]), /\[0\]\.admin is not a field/],
    ['a bad name', JSON.stringify([{ name: 'two words', token: WRITE, scope: 'write' }]), /\[0\]\.name must be/],
    ['a reserved name', JSON.stringify([{ name: 'admin', token: WRITE, scope: 'write' }]), /\[0\]\.name admin is reserved/],
    ['a repeated name', JSON.stringify([{ name: 'ops', token: WRITE, scope: 'write' }, { name: 'ops', token: READ, scope: 'read' }]), /\[1\]\.name ops is given twice/],
    ['a short token', JSON.stringify([{ name: 'ops', token: 'short', scope: 'write' }]), /\[0\]\.token \(of ops\) must be at least 16 printable ASCII characters/],
    ['a token that is not printable ASCII', JSON.stringify([{ name: 'ops', token: 'pässwörd-0123456789', scope: 'write' }]), /\[0\]\.token \(of ops\) must be at least 16 printable ASCII characters/],
    ['a shared token', JSON.stringify([{ name: 'ops', token: WRITE, scope: 'write' }, { name: 'ci', token: WRITE, scope: 'read' }]), /\[1\]\.token \(of ci\) is another entry's token too/],
    ['a bad scope', JSON.stringify([{ name: 'ops', token: WRITE, scope: 'admin' }]), /\[0\]\.scope \(of ops\) must be read or write/],
  ] as Array<[string, string, RegExp]>) {
    it(`refuses ${why}, naming the entry and never the token`, () => {
      const err = configRefusal({ RELAYKEY_ADMIN_TOKENS: value })
      assert.equal(err.variable, 'RELAYKEY_ADMIN_TOKENS')
      assert.match(err.message, message)
      assert.ok(!err.message.includes(WRITE) && !err.message.includes(READ), err.message)
    })
  }

  it('refuses RELAYKEY_ADMIN_TOKEN\'s value under another name', () => {
    const err = configRefusal({ RELAYKEY_ADMIN_TOKEN: WRITE, RELAYKEY_ADMIN_TOKENS: JSON.stringify([{ name: 'ops', token: WRITE, scope: 'read' }]) })
    assert.match(err.message, /holds RELAYKEY_ADMIN_TOKEN's value under another name/)
    assert.ok(!err.message.includes(WRITE))
  })
})
