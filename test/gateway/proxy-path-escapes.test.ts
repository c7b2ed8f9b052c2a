import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { checkProxyPath, withoutQueryParam } from '../../src/gateway/proxy-path.js'

describe('proxy path safety', () => {
  const escapes = [
    '..', '../admin', 'a/../../b', 'a/..', '.', 'a/./b',
    '%2e%2e', '%2E%2E/x', '.%2e/x', '%2e./x', 'a/%2e%2e/%2e%2e/b', '%2e',
    'a%2fb', 'a%2F..%2Fb', '%2F%2Fevil.example', 'a%5cb', 'a%5C..',
    '/evil.example/x', 'a//b', 'http://evil.example/', 'https:%2F%2Fevil.example',
    'a\\b', '..\\x', '\\\\evil.example\\x', 'a%00b', 'a b', 'a\tb', 'x%zz', 'x%', 'x%4',
    'caf\u00e9', '%ff', '..;/x', 'a/..;/..;/etc', 'a;b', '..%3B/x', 'a%3bb',
    '..#', '%2e%2e#x', 'a#b',
  ]
  for (const rest of escapes) {
    it(`refuses ${JSON.stringify(rest)}`, () => {
      assert.equal(checkProxyPath(rest), null)
    })
  }

  it('keeps ordinary paths as given and decodes them for rule matching only', () => {
    assert.deepEqual(checkProxyPath('resources/applicants/42'), { raw: 'resources/applicants/42', match: '/resources/applicants/42' })
    assert.deepEqual(checkProxyPath('users/a%40b.example/x'), { raw: 'users/a%40b.example/x', match: '/users/a@b.example/x' })
    assert.deepEqual(checkProxyPath('%61pplicants'), { raw: '%61pplicants', match: '/applicants' })
    assert.deepEqual(checkProxyPath(''), { raw: '', match: '/' })
    assert.deepEqual(checkProxyPath('a/'), { raw: 'a/', match: '/a/' })
  })

  it('lets an @ or a dotted name through, because the origin never comes from the path', () => {
    assert.ok(checkProxyPath('@evil.example/x'))
    assert.ok(checkProxyPath('...'))
    assert.ok(checkProxyPath('a..b/.hidden'))
  })

  it('removes only the named query parameter', () => {
    assert.equal(withoutQueryParam('api_key=stolen&x=1&api%5Fkey=2&y', 'api_key'), 'x=1&y')
    assert.equal(withoutQueryParam('', 'api_key'), '')
    assert.equal(withoutQueryParam('api_keyx=1', 'api_key'), 'api_keyx=1')
  })

  it('also removes look-alikes an upstream could read as the parameter: case, arrays, ";"', () => {
    assert.equal(withoutQueryParam('API_KEY=evil&x=1', 'api_key'), 'x=1')
    assert.equal(withoutQueryParam('api_key[]=evil&api_key[a]=evil&x=1', 'api_key'), 'x=1')
    assert.equal(withoutQueryParam('a=1;api_key=evil;b=2&c=3', 'api_key'), 'a=1;b=2&c=3')
    assert.equal(withoutQueryParam('api_key=evil;a=1', 'api_key'), 'a=1')
  })
})
