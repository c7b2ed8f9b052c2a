import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { compileEndpoint, findEndpoint, matchEndpoint } from '../../src/http/endpoint-pattern.js'

describe('endpoint patterns', () => {
  const cases: Array<[string, string, string, string, boolean]> = [
    ['GET', '/resources/applicants/*', 'GET', '/resources/applicants/42', true],
    ['GET', '/resources/applicants/*', 'GET', '/resources/applicants/42/docs', false],
    ['GET', '/resources/applicants/*', 'GET', '/resources/applicants/', false],
    ['GET', '/resources/applicants/*', 'GET', '/resources/applicants', false],
    ['GET', '/resources/applicants/*', 'POST', '/resources/applicants/42', false],
    ['*', '/resources/applicants/*', 'DELETE', '/resources/applicants/42', true],
    ['GET', '/resources/**', 'GET', '/resources', true],
    ['GET', '/resources/**', 'GET', '/resources/a/b/c', true],
    ['GET', '/resources/**', 'GET', '/resourcesx', false],
    ['GET', '/**', 'GET', '/anything/at/all', true],
    ['GET', '/a/*/c', 'GET', '/a/b/c', true],
    ['GET', '/a/*/c', 'GET', '/a//c', false],
    ['POST', '/resources/applicants', 'POST', '/resources/applicants', true],
    ['POST', '/resources/applicants', 'POST', '/resources/applicant', false],
    ['POST', '/resources/applicants', 'POST', '/resources/applicants/', false],
  ]
  for (const [ruleMethod, pattern, method, path, expected] of cases) {
    it(`${ruleMethod} ${pattern} ${expected ? 'matches' : 'does not match'} ${method} ${path}`, () => {
      assert.equal(matchEndpoint(compileEndpoint(ruleMethod, pattern), method, path), expected)
    })
  }

  it('finds the first matching rule', () => {
    const rules = [compileEndpoint('POST', '/a'), compileEndpoint('*', '/**'), compileEndpoint('GET', '/a')]
    assert.equal(findEndpoint(rules, 'GET', '/a'), 1)
    assert.equal(findEndpoint(rules, 'POST', '/a'), 0)
    assert.equal(findEndpoint([], 'GET', '/a'), -1)
  })
})
