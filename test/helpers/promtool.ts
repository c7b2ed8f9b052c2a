// `promtool check metrics` on an exposition text. .ci/run installs promtool (Debian package
// prometheus), so in CI its absence fails the test; elsewhere the test is marked skipped — it
// shows in the summary as skipped, never as a pass that checked nothing.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import type { TestContext } from 'node:test'

/** asserts promtool accepts `text` with no lint findings; false when it could not run here */
export function assertPromtoolAccepts (t: TestContext, text: string): boolean {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (run.error !== undefined && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
    if (process.env.CI !== undefined) assert.fail('promtool is not installed (apt-get install prometheus)')
    t.skip('promtool is not installed (apt-get install prometheus); the other assertions ran')
    return false
  }
  const output = `${run.stdout}${run.stderr}`
  assert.equal(run.status, 0, output)
  assert.equal(output.trim(), '', 'no lint findings')
  return true
}
