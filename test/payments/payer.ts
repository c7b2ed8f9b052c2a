// A payer as x402 clients are built: @x402/core's x402Client and x402HTTPClient choose the
// requirement, assemble the payload and encode the header. Only the signing is faked: the
// scheme below fills an EIP-3009 authorization (the `exact` EVM payload shape) with a random
// nonce and a random signature, which the mock facilitator never checks.
import { randomBytes } from 'node:crypto'
import { x402Client, x402HTTPClient } from '@x402/core/client'
import type { PaymentPayload, PaymentRequirements, SchemeNetworkClient } from '@x402/core/types'
import type { PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1 } from '@x402/core/types/v1'

export const PAYER = '0x' + 'a1'.repeat(20)

class FakeExactEvm implements SchemeNetworkClient {
  readonly scheme = 'exact'

  async createPaymentPayload (x402Version: number, requirements: PaymentRequirements) {
    const v1 = requirements as unknown as PaymentRequirementsV1
    const now = Math.floor(Date.now() / 1000)
    const payload = {
      signature: '0x' + randomBytes(65).toString('hex'),
      authorization: {
        from: PAYER,
        to: requirements.payTo,
        value: x402Version === 1 ? v1.maxAmountRequired : requirements.amount,
        validAfter: String(now - 600),
        validBefore: String(now + requirements.maxTimeoutSeconds),
        nonce: '0x' + randomBytes(32).toString('hex'),
      },
    }
    // a v1 scheme client returns the whole v1 payload, a v2 one only its part
    return x402Version === 1
      ? { x402Version, scheme: this.scheme, network: requirements.network, payload } as PaymentPayloadV1 as unknown as PaymentPayload
      : { x402Version, payload }
  }
}

function client (): x402HTTPClient {
  const core = x402Client.fromConfig({
    schemes: [
      { network: 'eip155:84532', client: new FakeExactEvm() },
      { network: 'base-sepolia' as PaymentRequirements['network'], client: new FakeExactEvm(), x402Version: 1 },
    ],
    // the test asset is no token the client knows
    spendControls: false,
  })
  return new x402HTTPClient(core)
}

/** PAYMENT-SIGNATURE value paying what a 402's PAYMENT-REQUIRED header asks */
export async function payV2 (paymentRequiredHeader: string): Promise<string> {
  const http = client()
  const required = http.getPaymentRequiredResponse((name) => (name === 'PAYMENT-REQUIRED' ? paymentRequiredHeader : null))
  const payload = await http.createPaymentPayload(required)
  return http.encodePaymentSignatureHeader(payload)['PAYMENT-SIGNATURE']!
}

/** X-PAYMENT value paying a v1 offer, as a v1 server would have made it */
export async function payV1 (offer: PaymentRequiredV1): Promise<string> {
  const http = client()
  const payload = await http.createPaymentPayload(offer as unknown as Parameters<x402HTTPClient['createPaymentPayload']>[0])
  return http.encodePaymentSignatureHeader(payload)['X-PAYMENT']!
}

/** base64 JSON, for hand-made (broken or foreign) payloads */
export function encode (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64')
}

export function decode (header: string): any {
  return JSON.parse(Buffer.from(header, 'base64').toString('utf8'))
}
