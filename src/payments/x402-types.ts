// The x402 wire types (v2, and v1 for X-PAYMENT), taken from the reference implementation so a
// renamed or retyped field breaks the build instead of a payer.
//
// Why types only, and @x402/core a devDependency: at run time the protocol is base64 JSON in
// four headers and three facilitator calls. @x402/core's helpers for that are one-liners whose
// import loads its whole resource-server/client bundle and zod, and its HTTPFacilitatorClient
// follows redirects, waits up to 90 s and logs with console.log: none of it fits the
// proxy's failure rules (docs/payments.md: a facilitator that does not answer well is a 502, never a
// free pass). `import type` is erased, so production installs carry no x402 code at all; the
// tests use @x402/core's real client to build payments and read our headers, which is what
// proves the wire format.
export type {
  Network, PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse, SupportedKind,
  SupportedResponse, VerifyResponse,
} from '@x402/core/types'
export type { PaymentPayloadV1, PaymentRequirementsV1 } from '@x402/core/types/v1'
