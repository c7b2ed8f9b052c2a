// Every command of `relaykey`. Modules load on demand: `serve` never loads the CLI's clients.
import type { Command } from './command.js'

const lazy = (words: string[], summary: string, help: string, load: () => Promise<{ run (args: string[]): Promise<number> }>): Command => ({
  words, summary, help, run: async (args) => (await load()).run(args),
})

export const COMMANDS: Command[] = [
  lazy(['serve'], 'run the proxy and the admin API (what npm start runs)', `usage: relaykey serve

Runs RelayKey: the proxy port, the admin port and a cluster of workers, configured by the
environment (README). SIGTERM or SIGINT drains in-flight requests, then exits 0.`,
  () => import('./serve-command.js')),
  lazy(['migrate'], 'apply migrations/ to DATABASE_URL', `usage: relaykey migrate

Applies the PostgreSQL migrations that DATABASE_URL does not have yet, each once.`,
  () => import('./migrate-command.js')),
  { words: ['config', 'diff'], summary: 'what applying a config file would change on the node (exit 3 when anything)', help: `usage: relaykey config diff -f <file> [--prune] [--json]

Compares a config file (relaykey.yaml, or JSON) with the node's partners, credentials,
policies, bindings and keys, and prints each change field by field: + create, ~ update,
- delete (only with --prune), + key to issue. Secrets show as references only.
What the node has and the file does not is listed with "=" (kept unless --prune).
Exit 0: no changes; 3: changes; 1: the file is invalid (file:line: field: reason) or the
node refused; 2: usage.

Example, in CI on a pull request:
  relaykey config diff -f relaykey.yaml || [ $? -eq 3 ]`,
  run: async (args) => (await import('./config-commands.js')).diff(args) },
  { words: ['config', 'apply'], summary: 'make the node match a config file (--prune deletes what the file lacks)', help: `usage: relaykey config apply -f <file> [--prune]

Applies the changes config diff shows, without prompting, in an order the node accepts:
partners, credential updates, partner updates, new credentials, policies, bindings, then
(with --prune) the deletions, then the keys to issue. Each key issued is printed once:
store it then. --prune refuses to delete a policy that keys still use, naming them, and
never revokes keys. Exit 0: applied (or nothing to do); 1: invalid file or a refusal
(what was applied before it stays applied); 2: usage.

Example, on merge:
  relaykey config apply -f relaykey.yaml --prune`,
  run: async (args) => (await import('./config-commands.js')).apply(args) },
  { words: ['config', 'export'], summary: 'the node\'s configuration as a config file (stdout)', help: `usage: relaykey config export [--json]

Writes the node's partners, credentials, policies and bindings as YAML (or JSON) that
config apply takes back as no change. Inline secrets appear by the digest of the sealed
value the node holds ({provider: inline, sealed: …}); no secret value ever appears.
Keys are not exported.

Example:
  relaykey config export > relaykey.yaml`,
  run: async (args) => (await import('./config-commands.js')).exportConfig(args) },
  { words: ['config', 'seal'], summary: 'seal a secret (stdin) under the master key, for an inline secret in a config file', help: `usage: relaykey config seal < value

Reads a secret on standard input (one trailing newline dropped) and prints
{"provider":"inline","ciphertext":"v1.…"}, sealed with AES-256-GCM under RELAYKEY_MASTER_KEY
(or the master-key file in RELAYKEY_DATA_DIR). Paste it into the config file: only a node
with the same master key can open it.

Example:
  printf %s "$SUMSUB_SECRET_KEY" | RELAYKEY_MASTER_KEY=… relaykey config seal`,
  run: async (args) => (await import('./config-commands.js')).seal(args) },
  lazy(['audit', 'verify'], 'check the audit trail\'s and the change log\'s hash chains (DATABASE_URL, else RELAYKEY_DATA_DIR)', `usage: relaykey audit verify

Walks every writer's hash chain in PostgreSQL (DATABASE_URL) or the embedded file
(RELAYKEY_DATA_DIR) and names the first altered, missing or inserted row of each, then the
admin change log's chain the same way. Exit 0: intact; 1: a problem; 2: usage.`,
  () => import('./audit-verify-command.js')),
  lazy(['keys', 'create'], 'issue a virtual key; prints the raw key once', `usage: relaykey keys create --name NAME --policy POLICY --environment ENV [options]

Issues a virtual key (POST /admin/keys) and prints its id, name and raw key (vk_…). The raw key
is shown only this once: RelayKey keeps only its digest.

Options:
  --name NAME            a label for the key (required; need not be unique)
  --policy POLICY        the policy's id or name (required)
  --environment ENV      the environment it calls partners in, e.g. sandbox (required)
  --customer C           customer label (shared customer limits and budgets)
  --team T               team label
  --service S            service label
  --expires-at TIME      RFC 3339 time it stops working, e.g. 2030-01-31T00:00:00Z
  --json                 print the API's answer (with "key") as JSON

Example:
  relaykey keys create --name onboarding-svc --policy kyc-readonly --environment sandbox --customer acme-bank

Exit: 0 issued; 1 refused (400 names the field, e.g. policy: no policy has this id or name); 2 usage.`,
  async () => ({ run: (await import('./keys-commands.js')).runCreate })),
  lazy(['keys', 'list'], 'list virtual keys', `usage: relaykey keys list [--policy POLICY] [--customer C] [--json]

Lists the virtual keys (GET /admin/keys), oldest first: id, name, status (active, revoked,
expired), policy, environment, customer, prefix and expiry. Raw keys are never shown.

Options:
  --policy POLICY        only keys of this policy (id or name)
  --customer C           only keys of this customer
  --json                 print the API's array as JSON

Example:
  relaykey keys list --customer acme-bank`,
  async () => ({ run: (await import('./keys-commands.js')).runList })),
  lazy(['keys', 'show'], 'show one virtual key', `usage: relaykey keys show KEY_ID [--json]

Shows every field of one key (GET /admin/keys/{id}): status, policy, labels, prefix, expiry,
revocation. The raw key is never shown.

Options:
  --json                 print the API's object as JSON

Example:
  relaykey keys show key_-vrtFEZPT735Emrn

Exit: 0 found; 4 no such key.`,
  async () => ({ run: (await import('./keys-commands.js')).runShow })),
  lazy(['keys', 'revoke'], 'revoke a virtual key (permanent)', `usage: relaykey keys revoke KEY_ID [--json]

Revokes a key for good (POST /admin/keys/{id}/revoke), including a raw key still in a rotation
grace period: the proxy then answers 401 key_revoked. Revoking again is harmless and keeps the
first revocation time.

Options:
  --json                 print the API's object as JSON

Example:
  relaykey keys revoke key_-vrtFEZPT735Emrn

Exit: 0 revoked; 4 no such key.`,
  async () => ({ run: (await import('./keys-commands.js')).runRevoke })),
  lazy(['keys', 'rotate'], 'issue a new raw key for a key; prints it once', `usage: relaykey keys rotate KEY_ID [--grace-seconds N] [--json]

Issues a new raw key for the same key record (POST /admin/keys/{id}/rotate) and prints it once.
The id, policy, labels and expiry stay; the previous raw key stops at once, or after the grace
period.

Options:
  --grace-seconds N      how long the previous raw key keeps working, 0 to 2592000 (default 0)
  --json                 print the API's answer (with the new "key") as JSON

Example:
  relaykey keys rotate key_-vrtFEZPT735Emrn --grace-seconds 300

Exit: 0 rotated; 1 refused (409 a revoked key cannot be rotated); 4 no such key.`,
  async () => ({ run: (await import('./keys-commands.js')).runRotate })),
  lazy(['usage'], 'a month of requests, outcomes, cost and payments', `usage: relaykey usage [--key KEY_ID] [--customer C] [--partner SLUG] [--month YYYY-MM] [--json]

Sums one UTC month of the audit trail (GET /admin/usage): requests by outcome (forwarded, each
refusal code, the rest), budget units charged, retries, upstream errors, body bytes, x402
payments, and the budget left when the key's (or the customer's) policy has one. The filters
combine; without any, every key's usage.

Options:
  --key KEY_ID           one key (an unknown id: exit 4)
  --customer C           one customer's keys
  --partner SLUG         requests to one partner
  --month YYYY-MM        the month, default the current UTC month
  --json                 print the API's object as JSON

Example:
  relaykey usage --customer acme-bank --month 2026-11`,
  async () => ({ run: (await import('./usage-command.js')).run })),
  lazy(['audit', 'tail'], 'the latest audit events; --follow for new ones', `usage: relaykey audit tail [--key KEY_ID] [--customer C] [--partner SLUG] [--outcome O] [--limit N] [--follow] [--json]

Prints the latest audit events, oldest first (GET /admin/audit): time, request id, key,
partner, method, path, status, outcome, cost and latency. With --follow it then polls every
second and prints new events as they are recorded, until SIGINT (Ctrl-C) or SIGTERM, which
exit 0. The filters combine.

Options:
  --key KEY_ID           one key's events
  --customer C           one customer's events
  --partner SLUG         events of requests to this partner
  --outcome O            forwarded, or a refusal code such as rate_limited
  --limit N              how many of the latest events to print first, 1 to 1000 (default 20)
  -f, --follow           keep printing new events
  --json                 one JSON object per event and line (NDJSON)

Example:
  relaykey audit tail --partner acme-kyc --outcome rate_limited --follow --json | jq .path`,
  async () => ({ run: (await import('./audit-tail-command.js')).run })),
  lazy(['changes', 'list'], 'the admin change log: who changed what, and when', `usage: relaykey changes list [filters] [--limit N] [--json]

Lists the newest admin changes (GET /admin/changes): sequence number, time, the name of the
admin token that made it, the action, the resource, and the fields that changed. --json prints
the API's page, with every field's before and after (secrets as references only).

Options:
  --resource-type T      partner, credential, policy, binding or key
  --resource-id ID       one resource
  --token NAME           changes made with one admin token (admin: RELAYKEY_ADMIN_TOKEN)
  --action A             create, update, delete, revoke or rotate
  --from TIME, --to TIME RFC 3339 time range
  --limit N              how many, 1 to 1000 (default 50)
  --json                 print the API's page as JSON

Example:
  relaykey changes list --resource-type key --action revoke`,
  async () => ({ run: (await import('./changes-command.js')).run })),
  lazy(['partners', 'list'], 'list partners (the upstream APIs)', `usage: relaykey partners list [--json]

Lists the partners (GET /admin/partners), by slug: id, auth type and base URL of each
environment.

Options:
  --json                 print the API's array as JSON

Example:
  relaykey partners list`,
  async () => ({ run: (await import('./list-commands.js')).runPartners })),
  lazy(['policies', 'list'], 'list policies', `usage: relaykey policies list [--json]

Lists the policies (GET /admin/policies), by name: id, what they allow, rate limits, budgets,
cost rules and x402 payment.

Options:
  --json                 print the API's array as JSON

Example:
  relaykey policies list --json | jq '.[].name'`,
  async () => ({ run: (await import('./list-commands.js')).runPolicies })),
  lazy(['credentials', 'list'], 'list a partner\'s credentials (references, never secrets)', `usage: relaykey credentials list --partner SLUG [--json]

Lists one partner's credentials (GET /admin/partners/{slug}/credentials), by name: id,
environment, weight, rate limit, and each secret part as its provider and reference
(env:NAME, file:/path, inline). Secret values are never shown.

Options:
  --partner SLUG         the partner (required)
  --json                 print the API's array as JSON

Example:
  relaykey credentials list --partner acme-kyc

Exit: 0 listed; 4 no such partner.`,
  async () => ({ run: (await import('./list-commands.js')).runCredentials })),
]
