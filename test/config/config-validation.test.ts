import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from '../../src/config/config.js'
import { configRefusal } from '../helpers/config-refusal.js'

const distributed = {
  DATABASE_URL: 'postgres://localhost/relaykey',
  REDIS_URL: 'redis://localhost:6379',
  RELAYKEY_ADMIN_TOKEN: 'a'.repeat(32),
  RELAYKEY_HMAC_SECRET: 'b'.repeat(32),
}


describe('configuration', () => {
  it('runs embedded with nothing set, with the contract defaults', () => {
    const config = loadConfig({})
    assert.equal(config.mode, 'embedded')
    assert.equal(config.port, 8080)
    assert.equal(config.host, '0.0.0.0')
    assert.equal(config.adminPort, 8081)
    assert.equal(config.adminHost, '127.0.0.1')
    assert.ok(config.workers >= 1)
    assert.match(config.dataDir, /\/data$/)
    assert.equal(config.autoMigrate, true)
  })

  it('runs distributed with both URLs and the required secrets', () => {
    const config = loadConfig(distributed)
    assert.equal(config.mode, 'distributed')
    assert.equal(config.hmacSecret?.length, 32)
  })

  it('names the missing URL when only one is set', () => {
    assert.equal(configRefusal({ DATABASE_URL: distributed.DATABASE_URL }).variable, 'REDIS_URL')
    assert.equal(configRefusal({ REDIS_URL: distributed.REDIS_URL }).variable, 'DATABASE_URL')
  })

  it('names each missing or malformed value', () => {
    assert.equal(configRefusal({ ...distributed, RELAYKEY_ADMIN_TOKEN: '' }).variable, 'RELAYKEY_ADMIN_TOKEN')
    assert.equal(configRefusal({ ...distributed, RELAYKEY_HMAC_SECRET: 'short' }).variable, 'RELAYKEY_HMAC_SECRET')
    assert.equal(configRefusal({ RELAYKEY_PORT: '80a' }).variable, 'RELAYKEY_PORT')
    assert.equal(configRefusal({ RELAYKEY_ADMIN_PORT: '70000' }).variable, 'RELAYKEY_ADMIN_PORT')
    assert.equal(configRefusal({ RELAYKEY_WORKERS: '0' }).variable, 'RELAYKEY_WORKERS')
    assert.equal(configRefusal({ RELAYKEY_LOG_LEVEL: 'loud' }).variable, 'RELAYKEY_LOG_LEVEL')
    assert.equal(configRefusal({ RELAYKEY_MASTER_KEY: 'abc' }).variable, 'RELAYKEY_MASTER_KEY')
    assert.equal(configRefusal({ RELAYKEY_AUTO_MIGRATE: 'maybe' }).variable, 'RELAYKEY_AUTO_MIGRATE')
    assert.equal(configRefusal({ ...distributed, DATABASE_URL: 'mysql://x' }).variable, 'DATABASE_URL')
    assert.equal(configRefusal({ ...distributed, REDIS_URL: 'not a url' }).variable, 'REDIS_URL')
    assert.equal(configRefusal({ RELAYKEY_ADMIN_TIMEOUT_MS: '50' }).variable, 'RELAYKEY_ADMIN_TIMEOUT_MS')
    assert.equal(configRefusal({ RELAYKEY_PG_STALL_MS: 'soon' }).variable, 'RELAYKEY_PG_STALL_MS')
    assert.equal(configRefusal({ RELAYKEY_PG_STALL_MS: '500' }).variable, 'RELAYKEY_PG_STALL_MS')
  })

  it('takes a public URL with an optional path prefix, refusing query, fragment, credentials and other schemes', () => {
    assert.equal(loadConfig({}).publicUrl, null)
    assert.equal(loadConfig({ RELAYKEY_PUBLIC_URL: 'https://GW.example.com/' }).publicUrl, 'https://gw.example.com')
    assert.equal(loadConfig({ RELAYKEY_PUBLIC_URL: 'https://gw.example.com:8443/relay//' }).publicUrl, 'https://gw.example.com:8443/relay')
    for (const bad of ['gw.example.com', 'ftp://gw.example.com', 'https://gw.example.com/?a=1', 'https://gw.example.com/#x', 'https://u:p@gw.example.com']) {
      assert.equal(configRefusal({ RELAYKEY_PUBLIC_URL: bad }).variable, 'RELAYKEY_PUBLIC_URL', bad)
    }
  })

  it('bounds admin calls and stalled store connections by default', () => {
    const config = loadConfig({})
    assert.equal(config.adminTimeoutMs, 15_000)
    assert.equal(config.pgStallMs, 10_000)
    assert.equal(loadConfig({ RELAYKEY_PG_STALL_MS: '0' }).pgStallMs, null, '0 turns the watchdog off')
  })

  it('takes a Redis Cluster as a list of seed hosts (CONTRACT §2), refusing a malformed one', () => {
    assert.equal(loadConfig({ ...distributed, REDIS_URL: 'redis+cluster://10.0.0.1:7000,10.0.0.2:7001,redis-c:7002' }).mode, 'distributed')
    assert.equal(loadConfig({ ...distributed, REDIS_URL: 'redis+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001' }).mode, 'distributed')
    for (const bad of ['redis+cluster://10.0.0.1:70000', 'redis+cluster://,10.0.0.2:7001', 'redis+cluster://h1:7000,h 2:7001', 'redis+cluster://h1:', 'redis+cluster:h1:7000']) {
      const refused = configRefusal({ ...distributed, REDIS_URL: bad })
      assert.equal(refused.variable, 'REDIS_URL', bad)
      assert.match(refused.message, /host|port|must start with/, bad)
    }
  })

  it('takes a master key as hex or base64', () => {
    assert.equal(loadConfig({ RELAYKEY_MASTER_KEY: 'ab'.repeat(32) }).masterKey?.length, 32)
    assert.equal(loadConfig({ RELAYKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') }).masterKey?.length, 32)
  })

  it('takes RELAYKEY_AUDIT_FSYNC as always, never or an interval in ms (default 1000), refusing anything else', () => {
    assert.equal(loadConfig({}).auditFsync, 1000)
    assert.equal(loadConfig({ RELAYKEY_AUDIT_FSYNC: 'always' }).auditFsync, 'always')
    assert.equal(loadConfig({ RELAYKEY_AUDIT_FSYNC: 'never' }).auditFsync, 'never')
    assert.equal(loadConfig({ RELAYKEY_AUDIT_FSYNC: '250' }).auditFsync, 250)
    for (const bad of ['sometimes', '0', '60001', '1.5', '-1', 'everysec']) {
      const refused = configRefusal({ RELAYKEY_AUDIT_FSYNC: bad })
      assert.equal(refused.variable, 'RELAYKEY_AUDIT_FSYNC', bad)
      assert.match(refused.message, /always, never, or an interval in ms/, bad)
    }
  })
  it('takes RELAYKEY_SECRET_FILES_DIR as an absolute directory apart from the data dir, /proc and /sys (unset: no file secrets)', () => {
    assert.equal(loadConfig({}).secretFilesDir, null)
    assert.equal(loadConfig({ RELAYKEY_SECRET_FILES_DIR: '/run/secrets/' }).secretFilesDir, '/run/secrets')
    for (const [bad, why] of [
      ['run/secrets', /absolute/],
      ['/', /root directory/],
      ['/proc/self', /\/proc/],
      ['/sys', /\/sys/],
      ['/var/lib/relaykey', /RELAYKEY_DATA_DIR/],
      ['/var/lib/relaykey/keys', /RELAYKEY_DATA_DIR/],
      ['/var/lib', /RELAYKEY_DATA_DIR/],
    ] as const) {
      const refused = configRefusal({ RELAYKEY_DATA_DIR: '/var/lib/relaykey', RELAYKEY_SECRET_FILES_DIR: bad })
      assert.equal(refused.variable, 'RELAYKEY_SECRET_FILES_DIR', bad)
      assert.match(refused.message, why, bad)
    }
  })
  it('takes RELAYKEY_EGRESS_ALLOW as hosts, *.suffixes, IPs and CIDRs (unset: no allow list)', () => {
    assert.equal(loadConfig({}).egressAllow, null)
    assert.deepEqual(loadConfig({ RELAYKEY_EGRESS_ALLOW: 'api.vendor.com, *.kyc.example,10.0.0.0/8' }).egressAllow, ['api.vendor.com', '*.kyc.example', '10.0.0.0/8'])
    const refused = configRefusal({ RELAYKEY_EGRESS_ALLOW: 'api.vendor.com,10.0.0.0/40' })
    assert.equal(refused.variable, 'RELAYKEY_EGRESS_ALLOW')
    assert.match(refused.message, /10\.0\.0\.0\/40/)
  })
})
