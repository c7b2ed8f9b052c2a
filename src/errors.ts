// Every error RelayKey answers with: one family of classes, one code → status table.

/** Error codes of the data plane (README) and the admin API (docs/admin-api.md). */
export type ErrorCode =
  | 'invalid_path' | 'bad_request'
  | 'missing_key' | 'invalid_key' | 'key_revoked' | 'key_expired'
  | 'partner_not_allowed' | 'endpoint_not_allowed' | 'environment_not_allowed'
  | 'unknown_partner' | 'not_found'
  | 'payment_required'
  | 'rate_limited' | 'upstream_quota_exceeded' | 'budget_exceeded' | 'concurrency_limited'
  | 'upstream_error' | 'partner_misconfigured' | 'circuit_open' | 'governance_unavailable' | 'upstream_timeout'
  | 'invalid_request' | 'conflict' | 'unauthorized' | 'forbidden' | 'method_not_allowed'
  | 'payload_too_large' | 'internal_error'

export function statusOf (code: ErrorCode): number {
  switch (code) {
    case 'invalid_path':
    case 'bad_request':
    case 'invalid_request':
      return 400
    case 'missing_key':
    case 'invalid_key':
    case 'key_revoked':
    case 'key_expired':
    case 'unauthorized':
      return 401
    case 'payment_required':
      return 402
    case 'partner_not_allowed':
    case 'endpoint_not_allowed':
    case 'environment_not_allowed':
    case 'forbidden':
      return 403
    case 'unknown_partner':
    case 'not_found':
      return 404
    case 'method_not_allowed':
      return 405
    case 'conflict':
      return 409
    case 'payload_too_large':
      return 413
    case 'rate_limited':
    case 'concurrency_limited':
    case 'upstream_quota_exceeded':
    case 'budget_exceeded':
      return 429
    case 'internal_error':
      return 500
    case 'upstream_error':
    case 'partner_misconfigured':
      return 502
    case 'circuit_open':
    case 'governance_unavailable':
      return 503
    case 'upstream_timeout':
      return 504
  }
}

/** Base of every unexpected failure: a stable code, a fixed name, whether retrying may help. */
export class RelayKeyError extends Error {
  readonly code: ErrorCode
  readonly retry: boolean
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown; retry?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.retry = options?.retry ?? false
  }
}

/** A value failed validation; `field` is the dotted path of the offending field. */
export class ValidationError extends RelayKeyError {
  override readonly name = 'ValidationError'
  readonly field: string
  constructor (field: string, message: string) {
    super('invalid_request', `${field}: ${message}`)
    this.field = field
  }
}

/** A unique name, slug or reference is already taken (or still in use). */
export class ConflictError extends RelayKeyError {
  override readonly name = 'ConflictError'
  readonly field: string
  constructor (field: string, message: string) {
    super('conflict', message)
    this.field = field
  }
}

/** A store (PostgreSQL, Redis, SQLite) needed for a decision did not answer in time. */
export class GovernanceUnavailableError extends RelayKeyError {
  override readonly name = 'GovernanceUnavailableError'
  constructor (message: string, cause?: unknown) {
    super('governance_unavailable', message, { cause, retry: true })
  }
}

/** Configuration that cannot start RelayKey; the message is the one line the operator sees. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  /** the first variable named; `variables` has them all */
  readonly variable: string
  readonly variables: readonly string[]
  constructor (variable: string, message: string, variables: readonly string[] = [variable]) {
    super(`${variable}: ${message}`)
    this.variable = variable
    this.variables = variables
  }

  /** several problems as one error, so the operator fixes them all in one go (one line, `; ` between) */
  static combine (errors: readonly ConfigError[]): ConfigError {
    if (errors.length === 1) return errors[0]!
    const combined = new ConfigError(errors[0]!.variable, '', errors.map((e) => e.variable))
    combined.message = errors.map((e) => e.message).join('; ')
    return combined
  }
}

/** The JSON body of every refusal (README, "every code the proxy answers with"). */
export function errorBody (code: ErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message, request_id: requestId } })
}

/** an error for a log line: its class and code only (messages can quote URLs with query secrets, hosts or parameters) */
export function errorSummary (err: unknown): { type: string; code?: string } {
  if (err instanceof Error) return { type: err.name, code: (err as { code?: string }).code }
  return { type: typeof err }
}
