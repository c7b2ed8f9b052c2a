// `relaykey serve` with a missing or malformed value stops with one line naming the variable.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CLI = new URL('../../src/cli.js', import.meta.url).pathname

function serve (env: Record<string, string>): { status: number | null; stderr: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'relaykey-badcfg-'))
  const run = spawnSync(process.execPath, [CLI, 'serve'], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 10_000 })
  rmSync(cwd, { recursive: true, force: true })
  return { status: run.status, stderr: run.stderr }
}

describe('start-up refuses bad configuration', () => {
  for (const [env, variable] of [
    [{ DATABASE_URL: 'postgres://x@127.0.0.1/x' }, 'REDIS_URL'],
    [{ REDIS_URL: 'redis://127.0.0.1:6379' }, 'DATABASE_URL'],
    [{ RELAYKEY_PORT: 'abc' }, 'RELAYKEY_PORT'],
    // valid on its own, but node:http would make every worker die at start, again and again
    [{ RELAYKEY_CLIENT_REQUEST_TIMEOUT_MS: '1000' }, 'RELAYKEY_CLIENT_REQUEST_TIMEOUT_MS'],
    [{ DATABASE_URL: 'postgres://x@127.0.0.1/x', REDIS_URL: 'redis://127.0.0.1:6379' }, 'RELAYKEY_ADMIN_TOKEN'],
  ] as Array<[Record<string, string>, string]>) {
    it(`names ${variable}`, () => {
      const { status, stderr } = serve(env)
      assert.equal(status, 2)
      const lines = stderr.trim().split('\n')
      assert.equal(lines.length, 1, stderr)
      assert.match(lines[0]!, new RegExp(`^relaykey: ${variable}: `))
    })
  }

  it('names every missing or malformed variable in one line, and how to generate the secrets', () => {
    const { status, stderr } = serve({ DATABASE_URL: 'postgres://x@127.0.0.1/x', RELAYKEY_PORT: 'abc', RELAYKEY_MASTER_KEY: 'short' })
    assert.equal(status, 2)
    const lines = stderr.trim().split('\n')
    assert.equal(lines.length, 1, stderr)
    const named = [...lines[0]!.matchAll(/(?:^relaykey: |; )([A-Z_]+): /g)].map((m) => m[1])
    assert.deepEqual(named.sort(), ['REDIS_URL', 'RELAYKEY_ADMIN_TOKEN', 'RELAYKEY_HMAC_SECRET', 'RELAYKEY_MASTER_KEY', 'RELAYKEY_PORT'])
    for (const secret of ['RELAYKEY_ADMIN_TOKEN', 'RELAYKEY_HMAC_SECRET', 'RELAYKEY_MASTER_KEY']) {
      assert.match(lines[0]!, new RegExp(`${secret}: [^;]*openssl rand -hex 32`))
    }
  })
})
