// docs/relaykey-config.schema.json, the JSON Schema editors use for relaykey.yaml: it accepts the
// files the docs show and a real export, and refuses the mistakes an editor should underline.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parse } from 'yaml'
import { ConfigFile } from '../../src/config-file/config-file.js'
import { desiredState } from '../../src/config-file/desired-state.js'

const require = createRequire(import.meta.url)
const Ajv2020 = require('ajv/dist/2020.js').default
const addFormats = require('ajv-formats').default

const schema = JSON.parse(readFileSync(new URL('../../../docs/relaykey-config.schema.json', import.meta.url), 'utf8'))
const ajv = new Ajv2020({ allErrors: true, strict: false })
addFormats(ajv)
const validate = ajv.compile(schema)

/** the yaml blocks of docs/gitops.md, the file users copy from */
function docExamples (): string[] {
  const text = readFileSync(new URL('../../../docs/gitops.md', import.meta.url), 'utf8')
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

describe('the config file\'s JSON Schema', () => {
  it('accepts every example in docs/gitops.md, as config apply does', () => {
    const examples = docExamples()
    assert.ok(examples.length >= 1)
    for (const example of examples) {
      assert.ok(validate(parse(example)), JSON.stringify(validate.errors))
      const state = desiredState(ConfigFile.parse('docs/gitops.md', example))
      assert.ok(state.partners.length > 0 && state.bindings.length > 0)
    }
  })

  it('accepts what config export writes (sealed digests, folded presets, every default spelt out)', () => {
    const exported = {
      partners: [{
        slug: 'sumsub', base_urls: { production: 'https://api.sumsub.com' }, auth: { type: 'hmac', preset: 'sumsub', max_body_bytes: 10485760 },
        tls: { ca: { provider: 'inline', sealed: '0123456789abcdef' } },
        timeouts: { connect_ms: 5000, request_ms: 30000 },
        retry: { max_attempts: 2, base_delay_ms: 100, max_delay_ms: 2000, on_status: [502, 503, 504], respect_retry_after: true, budget_percent: 20, budget_min_per_second: 3 },
        circuit_breaker: { failure_threshold: 5, open_ms: 30000, max_in_flight: 1000 },
      }],
      credentials: [{ partner: 'sumsub', name: 'prod', environment: 'production', secret: { provider: 'env', ref: 'A' }, weight: 1, rate_limit: null, signing_secret: { provider: 'inline', sealed: 'fedcba9876543210' } }],
      policies: [{ name: 'p', rate_limit: null, customer_rate_limit: null, budget: { monthly: 10 }, customer_budget: null, costs: [], allow: null, payment: null, on_governance_failure: 'deny', max_in_flight: null, customer_max_in_flight: null }],
      bindings: [{ policy: 'p', partner: 'sumsub' }],
    }
    assert.ok(validate(exported), JSON.stringify(validate.errors))
  })

  it('refuses an unknown section or field, a secret value, and an auth field of another scheme', () => {
    const bad: unknown[] = [
      { partner: [] },
      { partners: [{ slug: 'x', base_urls: { production: 'https://a.example' }, auth: { type: 'bearer' }, retries: 3 }] },
      { credentials: [{ partner: 'x', name: 'a', environment: 'production', secret: { provider: 'inline', value: 'sk_live' } }] },
      { partners: [{ slug: 'x', base_urls: { production: 'https://a.example' }, auth: { type: 'bearer', name: 'X-Key' } }] },
      { partners: [{ slug: 'Bad Slug', base_urls: { production: 'https://a.example' }, auth: { type: 'bearer' } }] },
    ]
    for (const doc of bad) assert.equal(validate(doc), false, JSON.stringify(doc))
  })
})
