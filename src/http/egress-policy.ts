// Where RelayKey may connect on a partner's behalf. A partner's base URL is chosen by whoever
// holds the admin token; pointed at a cloud metadata service it would make RelayKey fetch
// instance credentials for them. So:
//   - link-local and metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254) are refused
//     unless a CIDR in RELAYKEY_EGRESS_ALLOW covers them;
//   - with RELAYKEY_EGRESS_ALLOW set, only the hosts (exact, or `*.` for subdomains) and CIDRs
//     it lists are reached.
// The check is made on the address each connection actually goes to (a DNS lookup wrapped for
// undici's connector, and IP literals before connecting), so a DNS answer that changes after
// the partner was saved (rebinding) cannot reach a refused address. The admin API checks base
// URLs too, for an early 400.
import { BlockList, isIP } from 'node:net'
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'

export class EgressRefusedError extends Error {
  readonly code = 'RELAYKEY_EGRESS_REFUSED'
}

const METADATA = new BlockList()
METADATA.addSubnet('169.254.0.0', 16, 'ipv4')
METADATA.addSubnet('fe80::', 10, 'ipv6')
METADATA.addAddress('fd00:ec2::254', 'ipv6')

export class EgressPolicy {
  /** null: no allow list (every address but the metadata ranges) */
  readonly #names: { exact: Set<string>; suffixes: string[] } | null
  readonly #cidrs: BlockList
  readonly #hasCidrs: boolean

  /** `allow`: RELAYKEY_EGRESS_ALLOW's entries (hosts, `*.suffix`, IPs, CIDRs), or null */
  constructor (allow: readonly string[] | null) {
    this.#cidrs = new BlockList()
    this.#hasCidrs = false
    if (allow === null) {
      this.#names = null
      return
    }
    const exact = new Set<string>()
    const suffixes: string[] = []
    for (const entry of allow) {
      const cidr = parseCidr(entry)
      if (cidr !== null) {
        this.#cidrs.addSubnet(cidr.address, cidr.prefix, cidr.family)
        this.#hasCidrs = true
      } else if (entry.startsWith('*.')) {
        suffixes.push(entry.slice(1).toLowerCase())
      } else {
        exact.add(entry.toLowerCase())
      }
    }
    this.#names = { exact, suffixes }
  }

  /** why a connection to `address` (resolved from `host`) is refused, or null when it is allowed */
  refusal (host: string, address: string): string | null {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4'
    const mapped = unmapped(address)
    const listed = this.#hasCidrs && (this.#cidrs.check(address, family) || (mapped !== null && this.#cidrs.check(mapped, 'ipv4')))
    if (METADATA.check(address, family) || (mapped !== null && METADATA.check(mapped, 'ipv4'))) {
      return listed ? null : `${address} is a link-local or metadata address; list it in RELAYKEY_EGRESS_ALLOW to allow it`
    }
    if (this.#names === null || listed || this.#nameListed(host)) return null
    return `${host} (${address}) is not in RELAYKEY_EGRESS_ALLOW`
  }

  #nameListed (host: string): boolean {
    const names = this.#names!
    const h = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase()
    return names.exact.has(h) || names.suffixes.some((suffix) => h.endsWith(suffix))
  }

  /**
   * what can be told from a base URL's host alone: an IP literal is checked in full, a name only
   * against the listed names (when no CIDR could still admit what it resolves to)
   */
  hostRefusal (host: string): string | null {
    const bare = host.startsWith('[') ? host.slice(1, -1) : host
    if (isIP(bare) !== 0) return this.refusal(bare, bare)
    if (this.#names === null || this.#hasCidrs || this.#nameListed(bare)) return null
    return `${bare} is not in RELAYKEY_EGRESS_ALLOW`
  }

  /**
   * A dns.lookup for net.connect that answers only allowed addresses (all of them refused: an
   * EgressRefusedError). Bound once; undici passes it to every connection of the partner's pool.
   */
  readonly lookup = (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err !== null) return callback(err, '')
      let refusal = ''
      const allowed = addresses.filter((a) => {
        const why = this.refusal(hostname, a.address)
        if (why !== null) refusal = why
        return why === null
      })
      if (allowed.length === 0) return callback(new EgressRefusedError(`egress refused: ${refusal}`), '')
      if (options.all === true) return callback(null, allowed)
      callback(null, allowed[0]!.address, allowed[0]!.family)
    })
  }
}

/** `a.b.c.d/n`, `x::y/n`, or a bare IP (a single address); null for anything else */
function parseCidr (entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const slash = entry.indexOf('/')
  const address = slash === -1 ? entry : entry.slice(0, slash)
  const version = isIP(address)
  if (version === 0) return null
  const max = version === 4 ? 32 : 128
  const prefix = slash === -1 ? max : Number(entry.slice(slash + 1))
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' }
}

/** the IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else null */
function unmapped (address: string): string | null {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return m === null ? null : m[1]!
}

/** RELAYKEY_EGRESS_ALLOW's entries, or why one cannot be used */
export function parseEgressAllow (value: string): { entries: string[] } | { problem: string } {
  const entries = value.split(',').map((e) => e.trim()).filter((e) => e !== '')
  if (entries.length === 0) return { problem: 'must list at least one host or CIDR' }
  for (const entry of entries) {
    if (entry.includes('/') || isIP(entry) !== 0) {
      if (parseCidr(entry) === null) return { problem: `${entry} is not an IP address or CIDR` }
    } else if (!HOST.test(entry.startsWith('*.') ? entry.slice(2) : entry)) {
      return { problem: `${entry} is not a host name, *.suffix, IP address or CIDR` }
    }
  }
  return { entries }
}

const HOST = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/
