// Policy payment settings for the payment tests: USDC on Base Sepolia through a given facilitator.
import pino, { type Logger } from 'pino'
import { validatePaymentSettings, type PaymentSettings } from '../../src/payments/payment-settings.js'

export const ASSET = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
export const PAY_TO = '0x' + 'b2'.repeat(20)
export const RESOURCE = 'http://relaykey.test/proxy/acme/reports/42?format=pdf'

/** validated and normalized, as the admin API stores them */
export function paymentSettings (fields: Record<string, unknown> = {}): PaymentSettings {
  return validatePaymentSettings({
    amount: '10000',
    asset: ASSET,
    network: 'eip155:84532',
    pay_to: PAY_TO,
    facilitator_url: 'http://127.0.0.1:9/',
    description: 'Acme reports',
    extra: { name: 'USDC', version: '2' },
    ...fields,
  }, 'payment')!
}

/** a logger whose lines are kept, to check what was (and was not) logged */
export function recordingLogger (): { logger: Logger; lines: string[] } {
  const lines: string[] = []
  const logger = pino({ level: 'debug' }, { write (line: string) { lines.push(line) } })
  return { logger, lines }
}
