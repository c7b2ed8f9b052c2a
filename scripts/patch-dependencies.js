#!/usr/bin/env node
// Runs after `npm install`/`npm ci` (postinstall). Applies small, exact fixes to dependencies
// whose upstream fix is not released yet; each patch is idempotent and refuses to touch a file
// that does not look exactly as expected (a newer release may have fixed it another way).
//
// postgres 3.4.9: after a connection closes, a pending or new write calls socket.write on a
// null socket and throws from a setImmediate callback, which crashes the whole process (a
// PostgreSQL restart would kill every worker). Upstream: porsager/postgres#1154, #1208 (fix PRs
// #1168, #1176, #1209 unmerged). The patch turns it into an ordinary CONNECTION_CLOSED error.
import { readFileSync, writeFileSync, existsSync } from 'node:fs'

const root = new URL('../node_modules/postgres/', import.meta.url).pathname
const BEFORE = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`
const AFTER = `  function nextWrite(fn) {
    if (socket === null) { // relaykey patch: the connection closed under a pending write
      chunk = nextWriteTimer = null
      fn && process.nextTick(fn, Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`

let version = null
try {
  version = JSON.parse(readFileSync(root + 'package.json', 'utf8')).version
} catch {}
if (version === null) process.exit(0) // not installed (e.g. a production install without it)
for (const file of ['src/connection.js', 'cjs/src/connection.js']) {
  const path = root + file
  if (!existsSync(path)) continue
  const text = readFileSync(path, 'utf8')
  if (text.includes('relaykey patch')) continue
  if (!text.includes(BEFORE)) {
    console.warn(`patch-dependencies: postgres ${version} ${file} differs from 3.4.9; nextWrite patch not applied`)
    continue
  }
  writeFileSync(path, text.replace(BEFORE, AFTER))
}
