// x402 v1 names networks (`base-sepolia`), v2 uses CAIP-2 (`eip155:84532`). A v1 payment
// (X-PAYMENT) is matched against the policy's CAIP-2 network through this table, the one the
// x402 reference implementations keep for v1 (EVM chain ids and the three Solana clusters).

const EVM_CHAIN_IDS: Readonly<Record<string, number>> = {
  ethereum: 1,
  sepolia: 11155111,
  abstract: 2741,
  'abstract-testnet': 11124,
  'base-sepolia': 84532,
  base: 8453,
  'avalanche-fuji': 43113,
  avalanche: 43114,
  iotex: 4689,
  sei: 1329,
  'sei-testnet': 1328,
  polygon: 137,
  'polygon-amoy': 80002,
  peaq: 3338,
  story: 1514,
  educhain: 41923,
  'skale-base-sepolia': 324705682,
  megaeth: 4326,
  monad: 143,
  stable: 988,
  'stable-testnet': 2201,
  celo: 42220,
  flare: 14,
}

const SOLANA_CLUSTERS: Readonly<Record<string, string>> = {
  solana: 'solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp',
  'solana-devnet': 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1',
  'solana-testnet': 'solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z',
}

const V1_NAMES: ReadonlyMap<string, string> = new Map([
  ...Object.entries(EVM_CHAIN_IDS).map(([name, id]): [string, string] => [`eip155:${id}`, name]),
  ...Object.entries(SOLANA_CLUSTERS).map(([name, caip2]): [string, string] => [caip2, name]),
])

/** the v1 name of a CAIP-2 network, or null when v1 has none */
export function v1NetworkName (caip2: string): string | null {
  return V1_NAMES.get(caip2) ?? null
}
