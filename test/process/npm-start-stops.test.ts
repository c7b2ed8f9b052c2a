// `npm start` as a user runs it, stopped by npm's pid: npm does not pass SIGTERM on to its
// script, so RelayKey watches for npm's exit and drains as on SIGTERM — the port closes, no
// RelayKey process is left serving, and a request in flight still gets its whole answer.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../helpers/ports.js'

const REPO = new URL('../../../', import.meta.url).pathname

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('npm start, stopped by npm\'s pid', { timeout: 60_000 }, () => {
  it('stops RelayKey too: the port closes and the primary exits', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'relaykey-npm-start-'))
    const port = await freePort()
    const adminPort = await freePort()
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: REPO,
      env: { ...process.env, RELAYKEY_DATA_DIR: dataDir, RELAYKEY_HOST: '127.0.0.1', RELAYKEY_PORT: String(port), RELAYKEY_ADMIN_PORT: String(adminPort), RELAYKEY_WORKERS: '1', DATABASE_URL: '', REDIS_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    let primary = 0
    npm.stdout!.on('data', (c: Buffer) => { output += c.toString() })
    npm.stderr!.on('data', (c: Buffer) => { output += c.toString() })
    try {
      const deadline = Date.now() + 20_000
      while (!output.includes('RelayKey ready')) {
        assert.ok(Date.now() < deadline, `not ready:\n${output}`)
        await sleep(50)
      }
      primary = Number(/"pid":(\d+)[^\n]*"msg":"RelayKey ready"/.exec(output)![1])
      assert.ok(alive(primary))
      assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200)
      npm.kill('SIGTERM')
      for (let i = 0; i < 100 && alive(primary); i++) await sleep(100)
      assert.equal(alive(primary), false, `RelayKey (pid ${primary}) is still running after npm exited:\n${output}`)
      await assert.rejects(fetch(`http://127.0.0.1:${port}/health`), 'the proxy port still answers')
      assert.match(output, /"signal":"parent process \(npm\) exited"[^\n]*"msg":"shutting down: draining workers"/)
    } finally {
      npm.kill('SIGKILL')
      // an orphan left serving would hold this test's output pipes open
      if (primary > 0 && alive(primary)) process.kill(primary, 'SIGKILL')
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
