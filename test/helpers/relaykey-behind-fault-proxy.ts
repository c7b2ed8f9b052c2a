// A distributed RelayKey (one worker) whose PostgreSQL is reached through a TcpFaultProxy, with
// a governed partner set up: for tests of what happens when the database goes silent or away.
import { startMockPartner, type MockPartner } from './mock-partner.js'
import { createTestDatabase, type TestDatabase } from './postgres.js'
import { distributedEnv, setUpGovernedPartner, startRelayKey, type GovernedSetup, type RelayKeyProcess } from './relaykey-process.js'
import { TcpFaultProxy } from './tcp-fault-proxy.js'

export interface RelayKeyBehindFaultProxy {
  db: TestDatabase
  /** between RelayKey and PostgreSQL */
  proxy: TcpFaultProxy
  partner: MockPartner
  rk: RelayKeyProcess
  setup: GovernedSetup
  /** stops RelayKey, the partner and the proxy, and drops the database */
  close (): Promise<void>
}

export async function startRelayKeyBehindFaultProxy (env: Record<string, string>): Promise<RelayKeyBehindFaultProxy> {
  const db = await createTestDatabase()
  const proxy = await TcpFaultProxy.start({ port: Number(new URL(db.url).port || 5432) })
  const through = new URL(db.url)
  through.port = String(proxy.port)
  const partner = await startMockPartner()
  const rk = await startRelayKey({ workers: 1, env: distributedEnv(through.toString(), { extra: env }) })
  const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
  return {
    db,
    proxy,
    partner,
    rk,
    setup,
    async close () {
      proxy.pass()
      await rk.stop()
      await partner.close()
      await proxy.close()
      await db.drop()
    },
  }
}
