// README.md's table of environment variables names exactly the variables the code under src/
// reads, and the repository's documents stand on their own: none cites a document outside it
// called CONTRACT ("CONTRACT §4").
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const SETTING = /^(RELAYKEY_[A-Z0-9_]+|DATABASE_URL|REDIS_URL|NODE_EXTRA_CA_CERTS)$/
/** variables only tests set; the README does not list them */
const TEST_ONLY = /^RELAYKEY_TEST_/
/** what an environment variable's name looks like (an environment name like 'production' does not) */
const VARIABLE_NAME = /^[A-Z][A-Z0-9_]*$/

function files (dir: string, suffix: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return files(path, suffix)
    return entry.name.endsWith(suffix) ? [path] : []
  })
}

/** `env`, `process.env`, `x.env`, `this.#env`: an object of environment variables */
function isEnv (node: ts.Node): boolean {
  if (ts.isIdentifier(node)) return node.text === 'env'
  if (ts.isPropertyAccessExpression(node)) return node.name.text === 'env' || node.name.text === '#env'
  if (ts.isNonNullExpression(node) || ts.isParenthesizedExpression(node)) return isEnv(node.expression)
  return false
}

function literal (node: ts.Node | undefined): string | null {
  return node !== undefined && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : null
}

/**
 * Every environment variable a TypeScript file reads by name. Parsed with the TypeScript compiler,
 * so comments and strings that merely mention a variable (log messages, error codes such as
 * 'RELAYKEY_EGRESS_REFUSED', the worker environment the primary hands down) do not count. A read is:
 *   - `env.NAME`, `process.env.NAME`, `env?.NAME` (a property of an env object, see isEnv);
 *   - `env['NAME']` (an element of one, the name a string literal);
 *   - `const { NAME } = process.env` (destructured from one);
 *   - `f(env, 'NAME', …)`: a call given an env object first and the name as a string literal
 *     second — how src/config/config.ts's helpers (port, integer, fraction, onOff, boolean,
 *     fsyncPolicy) read `env[variable]` for the name they are passed.
 * A lookup with a name computed at run time (the env secret provider's `env[ref]`) names no
 * variable of RelayKey's and is not collected. Only names shaped like a variable are kept.
 */
function variablesRead (source: ts.SourceFile): Set<string> {
  const found = new Set<string>()
  const add = (name: string | null): void => { if (name !== null && VARIABLE_NAME.test(name)) found.add(name) }
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && isEnv(node.expression)) add(node.name.text)
    else if (ts.isElementAccessExpression(node) && isEnv(node.expression)) add(literal(node.argumentExpression))
    else if (ts.isVariableDeclaration(node) && node.initializer !== undefined && isEnv(node.initializer) && ts.isObjectBindingPattern(node.name)) {
      for (const element of node.name.elements) {
        const key = element.propertyName ?? element.name
        add(ts.isIdentifier(key) ? key.text : literal(key))
      }
    } else if (ts.isCallExpression(node) && node.arguments.length >= 2 && isEnv(node.arguments[0]!)) add(literal(node.arguments[1]))
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

function parse (file: string, text: string): ts.SourceFile {
  return ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
}

function codeVariables (): { settings: Set<string>; others: Map<string, string> } {
  const settings = new Set<string>()
  const others = new Map<string, string>()
  for (const file of files(join(ROOT, 'src'), '.ts')) {
    for (const name of variablesRead(parse(file, readFileSync(file, 'utf8')))) {
      if (TEST_ONLY.test(name)) continue
      if (SETTING.test(name)) settings.add(name)
      else others.set(name, file.slice(ROOT.length))
    }
  }
  return { settings, others }
}

/** the names in the first column of README.md's table whose header is `| variable | default | |` */
function readmeVariables (readme: string): Set<string> {
  const lines = readme.split('\n')
  const header = lines.findIndex((line) => /^\|\s*variable\s*\|\s*default\s*\|/.test(line))
  assert.ok(header >= 0, 'README.md has the table of variables')
  const names = new Set<string>()
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break
    // a row may name several: `RELAYKEY_PORT` / `RELAYKEY_HOST`
    for (const match of line.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) names.add(match[1]!)
  }
  return names
}

/** "CONTRACT", "CONTRACT §4", "CONTRACT.md", "contract §5": a document outside the repository */
const OUTSIDE_DOCUMENT = /\bCONTRACT\b|\b[Cc]ontract(\.md)?\s*§/

function documents (): string[] {
  return [join(ROOT, 'README.md'), ...files(join(ROOT, 'docs'), '.md')]
}

describe('README.md variable table', () => {
  it('lists exactly the environment variables src/ reads', () => {
    const { settings, others } = codeVariables()
    const documented = readmeVariables(readFileSync(join(ROOT, 'README.md'), 'utf8'))
    // found something: the scan works (config.ts alone reads thirty and more)
    assert.ok(settings.size >= 30 && settings.has('RELAYKEY_PORT') && settings.has('RELAYKEY_WORKERS') && settings.has('DATABASE_URL'), [...settings].join(' '))
    // a variable that is not named like a setting is a decision to make, not to miss
    assert.deepEqual(Object.fromEntries(others), {}, 'src reads variables outside RELAYKEY_*, DATABASE_URL, REDIS_URL and NODE_EXTRA_CA_CERTS: document them and widen SETTING, or stop reading them')
    const undocumented = [...settings].filter((name) => !documented.has(name)).sort()
    const unread = [...documented].filter((name) => !settings.has(name)).sort()
    assert.deepEqual({ undocumented, unread }, { undocumented: [], unread: [] },
      `README.md's table and src/ disagree: read by src/ but missing from the table: ${undocumented.join(', ') || 'none'}; in the table but read nowhere in src/: ${unread.join(', ') || 'none'}`)
  })

  it('the scan finds each form of read and nothing that only mentions a variable', () => {
    const text = [
      'const a = env.RELAYKEY_A; const b = process.env.RELAYKEY_B?.trim(); const c = env[\'RELAYKEY_C\']',
      'const { RELAYKEY_D, RELAYKEY_E: e } = process.env',
      'const f = integer(env, \'RELAYKEY_F\', 1, 0, 2); const g = this.#env[ref]',
      '// env.RELAYKEY_COMMENT',
      'throw new ConfigError(\'RELAYKEY_MESSAGE\', \'no\'); const code = \'RELAYKEY_EGRESS_REFUSED\'; fork({ RELAYKEY_WORKER_ENV: x })',
      'for (const [env, url] of entries) check(env, \'production\')',
    ].join('\n')
    assert.deepEqual([...variablesRead(parse('example.ts', text))].sort(), ['RELAYKEY_A', 'RELAYKEY_B', 'RELAYKEY_C', 'RELAYKEY_D', 'RELAYKEY_E', 'RELAYKEY_F'])
  })
})

describe('documents', () => {
  it('README.md and docs/ cite no document called CONTRACT', () => {
    const found: string[] = []
    for (const path of documents()) {
      readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
        if (OUTSIDE_DOCUMENT.test(line)) found.push(`${path.slice(ROOT.length)}:${i + 1}: ${line.trim()}`)
      })
    }
    assert.ok(documents().length > 5, 'README.md and docs/*.md were read')
    assert.deepEqual(found, [], 'the docs must stand on their own: say what the rule is instead')
  })
})
