#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node:test.
// Node 20's --test takes no globs, so the files are listed here. Extra arguments narrow the
// run to files whose path contains one of them: `npm test -- router store`.
import { readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { spawnSync } from 'node:child_process'

const root = new URL('../dist/test/', import.meta.url).pathname
const filters = process.argv.slice(2)

function walk (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return walk(path)
    return entry.name.endsWith('.test.js') ? [path] : []
  })
}

const files = walk(root)
  .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)))
  .sort()
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
// Test files start servers, databases and worker processes: two at a time fits 2 cores.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
})
process.exit(result.status ?? 1)
