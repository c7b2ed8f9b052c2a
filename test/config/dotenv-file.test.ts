// A .env in the working directory is read; the real environment wins over it.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const DOTENV = new URL('../../src/config/dotenv.js', import.meta.url).href

function envAfterLoading (dir: string, env: Record<string, string>): Record<string, string | undefined> {
  const script = `import(${JSON.stringify(DOTENV)}).then((m) => { m.loadDotEnv(); console.log(JSON.stringify({ a: process.env.RELAYKEY_PORT, b: process.env.RELAYKEY_LOG_LEVEL })) })`
  const run = spawnSync(process.execPath, ['-e', script], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  return JSON.parse(run.stdout)
}

describe('.env', () => {
  it('fills variables that are not set, and never overrides the real environment', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-dotenv-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, '.env'), 'RELAYKEY_PORT=9999\nRELAYKEY_LOG_LEVEL=debug\n')
    assert.deepEqual(envAfterLoading(dir, {}), { a: '9999', b: 'debug' })
    assert.deepEqual(envAfterLoading(dir, { RELAYKEY_LOG_LEVEL: 'warn' }), { a: '9999', b: 'warn' })
  })

  it('is optional', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'relaykey-dotenv-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    assert.deepEqual(envAfterLoading(dir, {}), {})
  })
})
