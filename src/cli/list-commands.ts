// `relaykey partners list`, `policies list`, `credentials list --partner SLUG`: what the node is
// configured with, as tables of the useful columns or (--json) the API's arrays. Credentials
// show each secret part as its provider and reference only: the API never returns a secret
// value, and these tables would not print one if it did.
import { EXIT } from './cli-error.js'
import { printJson, printTable } from './output.js'
import { parseCommandArgs } from './parse-args.js'
import { JSON_OPTION, admin, connect, rateLimitText, requiredOption, safeText } from './admin-command-kit.js'

type RateLimit = { requests: number; per_seconds: number; burst?: number } | null

interface PartnerView {
  id: string
  slug: string
  base_urls: Record<string, string>
  auth: { type: string; preset?: string }
  created_at: string
}

interface PolicyView {
  id: string
  name: string
  rate_limit: RateLimit
  customer_rate_limit: RateLimit
  budget: { monthly: number } | null
  customer_budget: { monthly: number } | null
  costs: unknown[]
  allow: unknown[] | null
  payment: { amount?: string; network?: string } | null
  max_in_flight?: number | null
}

interface SecretReference { provider?: string; ref?: string }

interface CredentialView {
  id: string
  name: string
  environment: string
  weight: number
  rate_limit: RateLimit
  secret: SecretReference | null
  [part: string]: unknown
}

/** the secret parts a credential may hold besides `secret` (src/store/model.ts SECRET_PARTS) */
const SECRET_PARTS = ['signing_secret', 'client_id', 'client_secret', 'client_cert', 'client_key', 'private_key'] as const

export async function runPartners (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, JSON_OPTION)
  const partners = await admin<PartnerView[]>(await connect(), 'GET', '/admin/partners')
  if (values.json === true) {
    printJson(partners)
    return EXIT.ok
  }
  printTable(partners, [
    ['slug', (p) => p.slug],
    ['id', (p) => p.id],
    ['auth', (p) => (typeof p.auth?.preset === 'string' ? `${p.auth.type} (${p.auth.preset})` : p.auth?.type)],
    ['base urls', (p) => safeText(Object.entries(p.base_urls).map(([env, url]) => `${env}=${url}`).join(' '))],
    ['created', (p) => p.created_at],
  ])
  return EXIT.ok
}

export async function runPolicies (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, JSON_OPTION)
  const policies = await admin<PolicyView[]>(await connect(), 'GET', '/admin/policies')
  if (values.json === true) {
    printJson(policies)
    return EXIT.ok
  }
  printTable(policies, [
    ['name', (p) => safeText(p.name)],
    ['id', (p) => p.id],
    ['allow', (p) => (p.allow === null ? 'everything' : p.allow.length === 0 ? 'nothing' : `${p.allow.length} rule${p.allow.length === 1 ? '' : 's'}`)],
    ['rate limit', (p) => rateLimitText(p.rate_limit)],
    ['customer rate limit', (p) => rateLimitText(p.customer_rate_limit)],
    ['budget', (p) => (p.budget === null ? null : `${p.budget.monthly}/month`)],
    ['customer budget', (p) => (p.customer_budget === null ? null : `${p.customer_budget.monthly}/month`)],
    ['costs', (p) => (p.costs.length === 0 ? null : `${p.costs.length} rule${p.costs.length === 1 ? '' : 's'}`)],
    ['payment', (p) => (p.payment === null ? null : safeText(`x402 ${p.payment.amount ?? ''} on ${p.payment.network ?? ''}`))],
  ])
  return EXIT.ok
}

export async function runCredentials (args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, { ...JSON_OPTION, partner: { type: 'string' } })
  const slug = requiredOption(values, 'partner')
  const credentials = await admin<CredentialView[]>(await connect(), 'GET', `/admin/partners/${encodeURIComponent(slug)}/credentials`)
  if (values.json === true) {
    printJson(credentials)
    return EXIT.ok
  }
  printTable(credentials, [
    ['name', (c) => safeText(c.name)],
    ['id', (c) => c.id],
    ['environment', (c) => c.environment],
    ['weight', (c) => c.weight],
    ['rate limit', (c) => rateLimitText(c.rate_limit)],
    ['secret', (c) => secretParts(c)],
  ])
  return EXIT.ok
}

/** `secret=env:ACME_TOKEN signing_secret=inline`: provider and reference of each part, never a value */
function secretParts (credential: CredentialView): string | null {
  const parts: string[] = []
  for (const name of ['secret', ...SECRET_PARTS]) {
    const part = credential[name] as SecretReference | null | undefined
    if (part === null || part === undefined || typeof part !== 'object') continue
    const provider = safeText(part.provider ?? '?')
    parts.push(provider === 'inline' || typeof part.ref !== 'string' ? `${name}=${provider}` : `${name}=${provider}:${safeText(part.ref)}`)
  }
  return parts.length === 0 ? null : parts.join(' ')
}
