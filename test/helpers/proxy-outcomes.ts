// Many proxy calls at once, reduced to what the limits tests count: status and error code.
import { Agent, request } from 'undici'
import type { RelayKeyProcess } from './relaykey-process.js'

export interface Outcome {
  status: number
  code: string | undefined
  headers: Record<string, string | string[] | undefined>
}

/** enough connections that hundreds of concurrent calls really are concurrent */
const agent = new Agent({ connections: 64 })

export async function callProxy (rk: RelayKeyProcess, key: string, path: string, method = 'GET'): Promise<Outcome> {
  const res = await request(`${rk.proxyUrl}/proxy/${path}`, { method: method as 'GET', headers: { 'x-relaykey': key }, dispatcher: agent })
  const text = await res.body.text()
  let code: string | undefined
  try {
    code = JSON.parse(text).error?.code
  } catch {}
  return { status: res.statusCode, code, headers: res.headers }
}

/** "status code" → how many, as JSON: the message an exactness assertion fails with */
export function tally (outcomes: Outcome[]): string {
  const out: Record<string, number> = {}
  for (const o of outcomes) out[`${o.status} ${o.code ?? ''}`] = (out[`${o.status} ${o.code ?? ''}`] ?? 0) + 1
  return JSON.stringify(out)
}

export function count (outcomes: Outcome[], status: number, code?: string): number {
  return outcomes.filter((o) => o.status === status && (code === undefined || o.code === code)).length
}
