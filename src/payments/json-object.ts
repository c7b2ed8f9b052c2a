// The one shape check every x402 parser here starts with: client payloads and facilitator
// answers are untrusted JSON.
export type JsonObject = Record<string, unknown>

export function isJsonObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
