// Policy `payment` settings: defaults filled in, every field checked with its name in the error,
// and prices matched per endpoint the way `costs` rules are (first match wins, "0" is free).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ValidationError } from '../../src/errors.js'
import { compilePayment, priceFor } from '../../src/payments/compile-payment.js'
import { validatePaymentSettings } from '../../src/payments/payment-settings.js'
import { ASSET, PAY_TO, paymentSettings } from './payment-fixtures.js'

const MINIMAL = {
  amount: '10000', asset: ASSET, network: 'eip155:84532', pay_to: PAY_TO, facilitator_url: 'https://x402.org/facilitator',
}

function refuses (fields: Record<string, unknown>, field: string): void {
  assert.throws(() => validatePaymentSettings({ ...MINIMAL, ...fields }, 'payment'), (err: unknown) => {
    assert.ok(err instanceof ValidationError, String(err))
    assert.equal(err.field, field, err.message)
    return true
  })
}

describe('payment settings', () => {
  it('are null when absent or null', () => {
    assert.equal(validatePaymentSettings(undefined, 'payment'), null)
    assert.equal(validatePaymentSettings(null, 'payment'), null)
  })

  it('fill in scheme exact, 60 s, no description, no extra and no prices', () => {
    assert.deepEqual(validatePaymentSettings(MINIMAL, 'payment'), {
      ...MINIMAL, scheme: 'exact', max_timeout_seconds: 60, description: null, extra: {}, prices: [],
    })
  })

  it('keep every optional field as given', () => {
    const full = {
      ...MINIMAL,
      scheme: 'upto',
      max_timeout_seconds: 300,
      description: 'Premium reports',
      extra: { name: 'USDC', version: '2' },
      prices: [{ method: 'POST', path: '/reports', amount: '50000' }, { method: '*', path: '/health', amount: '0' }],
    }
    assert.deepEqual(validatePaymentSettings(full, 'payment'), full)
  })

  it('accept networks other than EVM with their own address formats', () => {
    const solana = validatePaymentSettings({
      ...MINIMAL,
      network: 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1',
      asset: '4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU',
      pay_to: '9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin',
    }, 'payment')
    assert.equal(solana?.network, 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1')
  })

  const invalid: Array<[string, Record<string, unknown>, string]> = [
    ['an unknown member', { currency: 'USD' }, 'payment.currency'],
    ['no amount', { amount: undefined }, 'payment.amount'],
    ['an amount as a number', { amount: 10000 }, 'payment.amount'],
    ['a decimal amount', { amount: '0.01' }, 'payment.amount'],
    ['a zero amount', { amount: '0' }, 'payment.amount'],
    ['an amount with a leading zero', { amount: '010' }, 'payment.amount'],
    ['an amount beyond uint256', { amount: '1'.repeat(79) }, 'payment.amount'],
    ['no asset', { asset: undefined }, 'payment.asset'],
    ['an asset that is no EVM address', { asset: '0xabc' }, 'payment.asset'],
    ['a pay_to that is no EVM address', { pay_to: 'alice' }, 'payment.pay_to'],
    ['a v1 network name', { network: 'base-sepolia' }, 'payment.network'],
    ['a non-numeric eip155 chain', { network: 'eip155:base' }, 'payment.network'],
    ['a relative facilitator_url', { facilitator_url: '/facilitator' }, 'payment.facilitator_url'],
    ['a non-http facilitator_url', { facilitator_url: 'ftp://f.example' }, 'payment.facilitator_url'],
    ['a facilitator_url with credentials', { facilitator_url: 'https://user:pw@f.example' }, 'payment.facilitator_url'],
    ['a facilitator_url with a query', { facilitator_url: 'https://f.example/?key=1' }, 'payment.facilitator_url'],
    ['an uppercase scheme', { scheme: 'Exact' }, 'payment.scheme'],
    ['a zero timeout', { max_timeout_seconds: 0 }, 'payment.max_timeout_seconds'],
    ['a fractional timeout', { max_timeout_seconds: 1.5 }, 'payment.max_timeout_seconds'],
    ['a description with edge spaces', { description: ' x ' }, 'payment.description'],
    ['extra not an object', { extra: ['USDC'] }, 'payment.extra'],
    ['a huge extra', { extra: { blob: 'x'.repeat(5000) } }, 'payment.extra'],
    ['prices not an array', { prices: {} }, 'payment.prices'],
    ['a price rule that is no object', { prices: ['GET /x 5'] }, 'payment.prices[0]'],
    ['a price without amount', { prices: [{ method: 'GET', path: '/x' }] }, 'payment.prices[0].amount'],
    ['a price amount as a number', { prices: [{ method: 'GET', path: '/x', amount: '1' }, { method: 'GET', path: '/y', amount: 5 }] }, 'payment.prices[1].amount'],
    ['a lowercase price method', { prices: [{ method: 'get', path: '/x', amount: '1' }] }, 'payment.prices[0].method'],
    ['a price path with a partial wildcard', { prices: [{ method: 'GET', path: '/x*', amount: '1' }] }, 'payment.prices[0].path'],
    ['an unknown price member', { prices: [{ method: 'GET', path: '/x', amount: '1', cost: 1 }] }, 'payment.prices[0].cost'],
  ]
  for (const [what, fields, field] of invalid) {
    it(`refuse ${what}, naming ${field}`, () => refuses(fields, field))
  }

  it('refuse a payment that is not an object', () => {
    assert.throws(() => validatePaymentSettings('x402', 'payment'), (err: unknown) => err instanceof ValidationError && err.field === 'payment')
  })
})

describe('prices', () => {
  const payment = compilePayment(paymentSettings({
    prices: [
      { method: 'POST', path: '/reports', amount: '50000' },
      { method: '*', path: '/health', amount: '0' },
      { method: 'GET', path: '/reports/*/pdf', amount: '20000' },
      { method: '*', path: '/reports/**', amount: '30000' },
    ],
  }))

  it('take the first matching rule, like costs', () => {
    assert.equal(priceFor(payment, 'POST', '/reports')?.requirement.amount, '50000')
    assert.equal(priceFor(payment, 'GET', '/reports/42/pdf')?.requirement.amount, '20000')
    assert.equal(priceFor(payment, 'DELETE', '/reports/42/pdf')?.requirement.amount, '30000')
    assert.equal(priceFor(payment, 'GET', '/reports')?.requirement.amount, '30000')
  })

  it('fall back to the policy amount', () => {
    assert.equal(priceFor(payment, 'GET', '/other')?.requirement.amount, '10000')
    assert.equal(priceFor(payment, 'GET', '/report')?.requirement.amount, '10000')
  })

  it('make endpoints priced "0" free', () => {
    assert.equal(priceFor(payment, 'GET', '/health'), null)
  })

  it('offer one frozen requirement per distinct amount', () => {
    const a = priceFor(payment, 'GET', '/other')!
    assert.equal(a, priceFor(payment, 'PUT', '/elsewhere'))
    assert.ok(Object.isFrozen(a.requirement))
    assert.deepEqual(a.requirement, {
      scheme: 'exact', network: 'eip155:84532', amount: '10000', asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60,
      extra: { name: 'USDC', version: '2' },
    })
  })

  it('knows the x402 v1 name of the network, or that there is none', () => {
    assert.equal(payment.v1Network, 'base-sepolia')
    assert.equal(compilePayment(paymentSettings({ network: 'eip155:999999' })).v1Network, null)
  })
})
