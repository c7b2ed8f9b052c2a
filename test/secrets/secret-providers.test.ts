import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { InlineSecretCipher } from '../../src/secrets/inline-cipher.js'
import { SecretResolver } from '../../src/secrets/secret-resolver.js'
import { EnvSecretProvider } from '../../src/secrets/env-secret-provider.js'
import { FileSecretProvider } from '../../src/secrets/file-secret-provider.js'
import { InlineSecretProvider } from '../../src/secrets/inline-secret-provider.js'

describe('secret providers', () => {
  const cipher = new InlineSecretCipher(randomBytes(32))
  // RELAYKEY_SECRET_FILES_DIR
  const dir = mkdtempSync(join(tmpdir(), 'relaykey-secret-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const resolver = new SecretResolver([
    new EnvSecretProvider({ VENDOR_TOKEN: 'from-env' }),
    new FileSecretProvider(dir),
    new InlineSecretProvider(cipher),
  ])

  it('reads env, file and inline secrets', async () => {
    writeFileSync(join(dir, 'token'), 'from-file\n')
    assert.equal(await resolver.resolve({ provider: 'env', ref: 'VENDOR_TOKEN' }), 'from-env')
    assert.equal(await resolver.resolve({ provider: 'file', ref: join(dir, 'token') }), 'from-file')
    assert.equal(await resolver.resolve({ provider: 'inline', ciphertext: cipher.encrypt('from-db') }), 'from-db')
  })

  it('seals inline secrets with AES-256-GCM: no plaintext, fresh IV, tampering detected', () => {
    const a = cipher.encrypt('s3cret-value')
    const b = cipher.encrypt('s3cret-value')
    assert.notEqual(a, b)
    assert.ok(!a.includes('s3cret'))
    const parts = a.split('.')
    const flipped = Buffer.from(parts[3]!, 'base64url')
    flipped[0]! ^= 1
    assert.throws(() => cipher.decrypt([parts[0], parts[1], parts[2], flipped.toString('base64url')].join('.')))
    assert.throws(() => new InlineSecretCipher(randomBytes(32)).decrypt(a))
  })

  it("never resolves RelayKey's own settings, even from a row stored before the admin API refused them", async () => {
    const env = new EnvSecretProvider({ RELAYKEY_HMAC_SECRET: 'pepper', RELAYKEY_ADMIN_TOKEN: 'admin', DATABASE_URL: 'postgres://u:p@db/x', REDIS_URL: 'redis://r' })
    for (const ref of ['RELAYKEY_HMAC_SECRET', 'RELAYKEY_ADMIN_TOKEN', 'DATABASE_URL', 'REDIS_URL']) {
      await assert.rejects(env.resolve({ provider: 'env', ref }), /RelayKey's own setting/)
    }
  })

  it('reads no file outside RELAYKEY_SECRET_FILES_DIR: not by path, .., or a symlink; none at all without it', async (t) => {
    const outside = mkdtempSync(join(tmpdir(), 'relaykey-data-'))
    t.after(() => rmSync(outside, { recursive: true, force: true }))
    writeFileSync(join(outside, 'master-key'), 'the-master-key')
    symlinkSync(join(outside, 'master-key'), join(dir, 'innocent'))
    for (const ref of [join(outside, 'master-key'), join(dir, '..', basename(outside), 'master-key'), '/proc/self/environ']) {
      await assert.rejects(resolver.resolve({ provider: 'file', ref }), /must be a file under RELAYKEY_SECRET_FILES_DIR/, ref)
    }
    await assert.rejects(resolver.resolve({ provider: 'file', ref: join(dir, 'innocent') }), /resolves to a file outside RELAYKEY_SECRET_FILES_DIR/)
    // a symlink that stays inside is fine
    writeFileSync(join(dir, 'real'), 'inside')
    symlinkSync(join(dir, 'real'), join(dir, 'alias'))
    assert.equal(await resolver.resolve({ provider: 'file', ref: join(dir, 'alias') }), 'inside')
    const off = new FileSecretProvider(null)
    await assert.rejects(off.resolve({ provider: 'file', ref: join(dir, 'real') }), /file secret provider is off/)
  })

  it('fails with messages that never contain the secret', async () => {
    await assert.rejects(resolver.resolve({ provider: 'env', ref: 'MISSING' }), /MISSING is not set/)
    await assert.rejects(resolver.resolve({ provider: 'file', ref: join(dir, 'nonexistent') }), /cannot be read \(ENOENT\)/)
    const other = new InlineSecretCipher(randomBytes(32)).encrypt('do-not-leak')
    await assert.rejects(resolver.resolve({ provider: 'inline', ciphertext: other }), (err: Error) => !err.message.includes('do-not-leak'))
  })
})
