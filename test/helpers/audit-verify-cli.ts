// `relaykey audit verify` run as an operator runs it: the CLI in a process of its own, with only
// the environment given (and PATH).
import { spawnSync } from 'node:child_process'

const ROOT = new URL('../../../', import.meta.url).pathname

export function runAuditVerify (env: Record<string, string>): { status: number | null, out: string } {
  const result = spawnSync(process.execPath, ['bin/relaykey.js', 'audit', 'verify'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  })
  return { status: result.status, out: result.stdout + result.stderr }
}
