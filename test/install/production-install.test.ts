// A production install as an operator makes it: the repository's files (what a clean clone has),
// `npm ci --omit=dev`, then the documented service command `node dist/src/cli.js serve`. No
// devDependency is there (no type checker's @types, no test or bench tools), so this proves the
// install builds what it runs. SIGTERM to that process drains what is in flight and exits 0.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startMockPartner, type MockPartner } from '../helpers/mock-partner.js'
import { setUpGovernedPartner, startRelayKey } from '../helpers/relaykey-process.js'

const REPO = new URL('../../../', import.meta.url).pathname
const SLOW_ANSWER_MS = 1500

/** the tracked files as they are in the working tree: a clean clone of this commit in CI */
function copyTrackedFiles (to: string): void {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: REPO, encoding: 'utf8' }).split('\0').filter((f) => f !== '')
  for (const file of files) {
    if (!existsSync(join(REPO, file))) continue // deleted in the working tree, not yet committed
    mkdirSync(dirname(join(to, file)), { recursive: true })
    writeFileSync(join(to, file), readFileSync(join(REPO, file)))
  }
}

describe('production install: npm ci --omit=dev, then the service command', { timeout: 300_000 }, () => {
  let dir: string
  let partner: MockPartner

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'relaykey-install-'))
    copyTrackedFiles(dir)
    const install = spawnSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: dir, encoding: 'utf8', timeout: 240_000, env: { ...process.env, NODE_ENV: 'production' },
    })
    assert.equal(install.status, 0, `npm ci --omit=dev failed:\n${install.stdout}\n${install.stderr}`)
    partner = await startMockPartner()
    partner.handle((req, res) => {
      const body = JSON.stringify({ path: req.url })
      const answer = (): void => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body) }
      if (req.url === '/slow') setTimeout(answer, SLOW_ANSWER_MS)
      else answer()
    })
  })

  after(async () => {
    await partner?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('installs no devDependency and builds the service command', () => {
    assert.ok(existsSync(join(dir, 'dist/src/cli.js')), 'dist/src/cli.js was not built by the install')
    for (const devOnly of ['autocannon', 'tinybench', 'ajv', '@types/node']) {
      assert.ok(!existsSync(join(dir, 'node_modules', devOnly)), `${devOnly} is a devDependency, yet installed`)
    }
    assert.ok(!existsSync(join(dir, 'dist/test')), 'the production build compiled the tests')
  })

  it('serves a governed request, and SIGTERM lets the in-flight one finish and exits 0', async () => {
    const rk = await startRelayKey({ cli: join(dir, 'dist/src/cli.js'), workers: 1 })
    let stopped = false
    try {
      const setup = await setUpGovernedPartner(rk, { baseUrl: partner.url })
      const res = await fetch(`${rk.proxyUrl}/proxy/acme/hello`, { headers: { 'x-relaykey': setup.key } })
      assert.equal(res.status, 200, await res.clone().text())
      assert.deepEqual(await res.json(), { path: '/hello' })
      assert.equal(partner.received.at(-1)!.headers['x-app-token'], 'upstream-secret-value')

      const inFlight = fetch(`${rk.proxyUrl}/proxy/acme/slow`, { headers: { 'x-relaykey': setup.key } })
        .then(async (r) => ({ status: r.status, body: await r.text() }))
      while (!partner.received.some((r) => r.url === '/slow')) await sleep(20)
      const code = await rk.stop('SIGTERM')
      stopped = true
      const answered = await inFlight
      assert.equal(answered.status, 200)
      assert.deepEqual(JSON.parse(answered.body), { path: '/slow' })
      assert.equal(code, 0, rk.output())
    } finally {
      if (!stopped) await rk.stop('SIGKILL')
    }
  })
})
