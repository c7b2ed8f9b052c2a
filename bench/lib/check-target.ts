// One request through a target before any load: a proxy that answers fast but wrong (a 401 from
// the gateway, a 502 from a broken pool, a mangled body) must fail the benchmark, not win it.
import type { LoadTarget } from './load.js'

export async function checkTarget (target: LoadTarget, expect: { status: number; body: string; headers?: string[] }): Promise<void> {
  const res = await fetch(target.url, { method: target.method ?? 'GET', headers: target.headers, body: target.body })
  const body = await res.text()
  if (res.status !== expect.status || body !== expect.body) {
    throw new Error(`${target.name}: expected ${expect.status} with the upstream body, got ${res.status}: ${body.slice(0, 500)}`)
  }
  for (const name of expect.headers ?? []) {
    if (!res.headers.has(name)) throw new Error(`${target.name}: the response has no ${name} header`)
  }
}
