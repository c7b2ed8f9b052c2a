import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { connectionTokens, copyRequestHeaders, responseHeaders } from '../../src/gateway/header-rules.js'

describe('header hygiene', () => {
  it('drops the key, hop-by-hop, proxy, forwarding, payment and credential headers going upstream', () => {
    const raw = [
      'Host', 'relaykey.local', 'X-RelayKey', 'vk_secret', 'Connection', 'keep-alive, X-App-Token, X-Custom-Hop',
      'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Trailer', 'x',
      'Proxy-Authorization', 'Basic x', 'Proxy-Connection', 'keep-alive', 'Forwarded', 'for=1.2.3.4',
      'X-Forwarded-For', '1.2.3.4', 'X-Forwarded-Host', 'evil', 'x-app-token', 'client-supplied',
      'X-Custom-Hop', 'gone', 'Payment-Signature', 'p', 'X-Payment', 'p', 'Expect', '100-continue',
      'Content-Type', 'application/json', 'traceparent', '00-abc-def-01', 'Accept', 'a', 'Accept', 'b',
    ]
    const out: string[] = []
    copyRequestHeaders(raw, 'x-app-token', connectionTokens(raw), out)
    assert.deepEqual(out, ['Content-Type', 'application/json', 'traceparent', '00-abc-def-01', 'Accept', 'a', 'Accept', 'b'])
  })

  it('reads Connection tokens from every Connection header', () => {
    assert.equal(connectionTokens(['Accept', '*/*']), null)
    assert.deepEqual([...connectionTokens(['Connection', 'A, b', 'connection', ' C '])!], ['a', 'b', 'c'])
  })

  it('leaves out Connection tokens that name headers dropped anyway', () => {
    assert.equal(connectionTokens(['Connection', 'keep-alive']), null)
    assert.equal(connectionTokens(['connection', 'Keep-Alive, Upgrade , TE']), null)
    assert.deepEqual([...connectionTokens(['Connection', 'Keep-Alive', 'Connection', 'keep-alive, X-Hop'])!], ['x-hop'])
    const raw = ['Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'X-Kept', '1'].map((s) => Buffer.from(s, 'latin1'))
    assert.deepEqual(responseHeaders(raw, 'rid'), ['X-Kept', '1', 'x-relaykey-request-id', 'rid'])
  })

  it('drops hop-by-hop and Connection-named headers coming back and adds the request id', () => {
    const raw = ['Content-Type', 'text/plain', 'Connection', 'X-Internal', 'X-Internal', 'secret-ish',
      'Transfer-Encoding', 'chunked', 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2',
      'X-RelayKey-Request-Id', 'spoofed'].map((s) => Buffer.from(s, 'latin1'))
    assert.deepEqual(responseHeaders(raw, 'rid-1'), [
      'Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'x-relaykey-request-id', 'rid-1',
    ])
  })

  it('drops x402 answer headers a partner sends: only RelayKey speaks for payments', () => {
    const raw = ['Content-Type', 'text/plain', 'PAYMENT-RESPONSE', 'forged', 'X-Payment-Response', 'forged',
      'Payment-Required', 'forged', 'X-Payment-Responses', 'kept'].map((s) => Buffer.from(s, 'latin1'))
    assert.deepEqual(responseHeaders(raw, 'rid'), ['Content-Type', 'text/plain', 'X-Payment-Responses', 'kept', 'x-relaykey-request-id', 'rid'])
  })

  it('takes a query-auth credential out of redirect targets', () => {
    const raw = ['Location', 'https://vendor.example/v1/next/?a=1&api_key=SECRET&b=2#frag', 'Content-Location', '/v1/x?API_KEY=SECRET',
      'X-Other', '/v1/x?api_key=kept-elsewhere'].map((s) => Buffer.from(s, 'latin1'))
    assert.deepEqual(responseHeaders(raw, 'rid', 'api_key'), [
      'Location', 'https://vendor.example/v1/next/?a=1&b=2#frag', 'Content-Location', '/v1/x',
      'X-Other', '/v1/x?api_key=kept-elsewhere', 'x-relaykey-request-id', 'rid',
    ])
  })
})
