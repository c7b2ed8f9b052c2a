// REDIS_URL for Redis Cluster names several seed hosts; the client gets each of them, and the
// credentials decoded.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parseClusterUrl } from '../../src/store/redis/cluster-url.js'

describe('parseClusterUrl', () => {
  it('returns every seed host with its port (6379 when none is given)', () => {
    assert.deepEqual(parseClusterUrl('redis+cluster://10.0.0.1:7000,redis-b,[::1]:7002/0'), {
      hosts: [{ host: '10.0.0.1', port: 7000 }, { host: 'redis-b', port: 6379 }, { host: '::1', port: 7002 }],
      username: undefined,
      password: undefined,
    })
  })

  it('decodes the user and password', () => {
    const parsed = parseClusterUrl('redis+cluster://app:s%40cret%3A1@h1:7000,h2:7001')
    assert.equal(parsed.username, 'app')
    assert.equal(parsed.password, 's@cret:1')
    assert.equal(parseClusterUrl('redis+cluster://:only-password@h1:7000').password, 'only-password')
    assert.equal(parseClusterUrl('redis+cluster://:only-password@h1:7000').username, undefined)
  })

  it('says what is wrong with a malformed list', () => {
    assert.throws(() => parseClusterUrl('redis://h1:7000'), /must start with redis\+cluster:\/\//)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:7000,'), /host/)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:0'), /port/)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:x'), /port/)
  })
})
