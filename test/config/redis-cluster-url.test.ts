// REDIS_URL for Redis Cluster names several seed hosts; the client gets each of them, and the
// credentials decoded.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parseClusterUrl } from '../../src/config/redis-cluster-url.js'

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

  it('takes any character in the password, names with "_", and the scheme in any case', () => {
    const parsed = parseClusterUrl('REDIS+CLUSTER://app:pa/ss?w@rd@redis_node_1:7000,redis_node_2:7001')
    assert.equal(parsed.password, 'pa/ss?w@rd')
    assert.deepEqual(parsed.hosts, [{ host: 'redis_node_1', port: 7000 }, { host: 'redis_node_2', port: 7001 }])
  })

  it('never quotes the credentials in its errors', () => {
    assert.throws(() => parseClusterUrl('redis+cluster://user:s3cret/x@h1:70000'), (err: Error) => {
      assert.match(err.message, /port/)
      assert.ok(!err.message.includes('s3cret'), err.message)
      return true
    })
  })

  it('says what is wrong with a malformed list', () => {
    assert.throws(() => parseClusterUrl('redis+cluster://h1:0x1B58'), /port/)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:07000000'), /port/)
    assert.throws(() => parseClusterUrl('redis://h1:7000'), /must start with redis\+cluster:\/\//)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:7000,'), /host/)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:0'), /port/)
    assert.throws(() => parseClusterUrl('redis+cluster://h1:x'), /port/)
  })
})
