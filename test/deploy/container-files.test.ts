// The deployment files, read as a reviewer reads them (no Docker engine needed): the Dockerfile
// (parsed instruction by instruction: continuations, comments, stages, exec vs shell form), its
// .dockerignore, docker-compose.yml (parsed with `yaml`, ${…} substituted as with no variables
// set) and the systemd unit example. Each check names the file and what is wrong with it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, posix } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { loadConfig } from '../../src/config/config.js'

const REPO = new URL('../../../', import.meta.url).pathname
const read = (file: string): string => readFileSync(join(REPO, file), 'utf8')

/** RELAYKEY_SHUTDOWN_GRACE_MS's default; primary.ts kills workers still alive at grace + 5 s */
const DEFAULT_GRACE_MS = 10_000
const BACKSTOP_MS = 5_000

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string
  /** 1-based line of the instruction's first line */
  line: number
  /** the arguments after any leading --flags, continuations joined */
  rest: string
  flags: Map<string, string>
  /** the arguments as a JSON array (exec form), or null for shell form */
  exec: string[] | null
}

interface Stage {
  index: number
  name: string | null
  base: string
  instructions: Instruction[]
}

interface Dockerfile {
  args: Map<string, string>
  stages: Stage[]
}

const FLAGGED = new Set(['FROM', 'COPY', 'ADD', 'RUN', 'HEALTHCHECK'])

function parseDockerfile (text: string): Dockerfile {
  const lines = text.split(/\r?\n/)
  let escape = '\\'
  // parser directives: only at the very top, before any comment, blank line or instruction
  for (const line of lines) {
    const directive = /^#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$/.exec(line)
    if (directive === null) break
    if (directive[1]!.toLowerCase() === 'escape') escape = directive[2]!
  }
  const logical: { line: number; text: string }[] = []
  let current: { line: number; parts: string[] } | null = null
  lines.forEach((raw, i) => {
    const trimmed = raw.trim()
    // comment lines are dropped, even in the middle of a continued instruction; so are blank
    // lines inside one
    if (trimmed.startsWith('#') || trimmed === '') return
    const continues = trimmed.endsWith(escape)
    current ??= { line: i + 1, parts: [] }
    current.parts.push((continues ? trimmed.slice(0, -escape.length) : trimmed).trim())
    if (!continues) {
      logical.push({ line: current.line, text: current.parts.filter((p) => p !== '').join(' ') })
      current = null
    }
  })
  if (current !== null) {
    const open = current as { line: number; parts: string[] }
    logical.push({ line: open.line, text: open.parts.join(' ') })
  }

  const args = new Map<string, string>()
  const stages: Stage[] = []
  for (const { line, text: instructionText } of logical) {
    const match = /^(\S+)\s*([\s\S]*)$/.exec(instructionText)!
    const keyword = match[1]!.toUpperCase()
    let rest = match[2]!
    const flags = new Map<string, string>()
    if (FLAGGED.has(keyword)) {
      for (let flag = /^--([A-Za-z-]+)(?:=(\S*))?\s*/.exec(rest); flag !== null; flag = /^--([A-Za-z-]+)(?:=(\S*))?\s*/.exec(rest)) {
        flags.set(flag[1]!, flag[2] ?? '')
        rest = rest.slice(flag[0].length)
      }
    }
    const instruction: Instruction = { keyword, line, rest, flags, exec: execForm(rest) }
    if (keyword === 'FROM') {
      const [image, as, name] = rest.split(/\s+/)
      const stageName = as !== undefined && as.toUpperCase() === 'AS' && name !== undefined ? name : null
      stages.push({ index: stages.length, name: stageName, base: substitute(image ?? '', args), instructions: [instruction] })
    } else if (stages.length === 0) {
      if (keyword === 'ARG') {
        const [argName, value] = rest.split('=', 2)
        args.set(argName!.trim(), (value ?? '').trim().replace(/^"(.*)"$/, '$1'))
      }
    } else {
      stages.at(-1)!.instructions.push(instruction)
    }
  }
  return { args, stages }
}

function execForm (rest: string): string[] | null {
  if (!rest.startsWith('[')) return null
  try {
    const parsed: unknown = JSON.parse(rest)
    return Array.isArray(parsed) && parsed.every((p) => typeof p === 'string') ? parsed : null
  } catch {
    return null // not valid JSON: Docker runs it in shell form
  }
}

function substitute (value: string, args: Map<string, string>): string {
  return value.replace(/\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)/g, (_, braced?: string, bare?: string) => args.get((braced ?? bare)!) ?? '')
}

const all = (stage: Stage, keyword: string): Instruction[] => stage.instructions.filter((i) => i.keyword === keyword)
const last = (stage: Stage, keyword: string): Instruction | undefined => all(stage, keyword).at(-1)

/** ENV's key=value pairs (or the legacy `ENV key value`) */
function envOf (stage: Stage): Map<string, string> {
  const env = new Map<string, string>()
  for (const instruction of all(stage, 'ENV')) {
    if (!/^[A-Za-z_]\w*=/.test(instruction.rest)) {
      const [key, ...value] = instruction.rest.split(/\s+/)
      env.set(key!, value.join(' '))
      continue
    }
    for (const pair of instruction.rest.matchAll(/([A-Za-z_]\w*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
      env.set(pair[1]!, pair[2]!.replace(/^"([\s\S]*)"$|^'([\s\S]*)'$/, '$1$2'))
    }
  }
  return env
}

/** the HEALTHCHECK's command, or null for NONE; exec form as an array, shell form as ['sh', '-c', …] */
function healthcheckCommand (instruction: Instruction): string[] | null {
  if (/^NONE\b/i.test(instruction.rest)) return null
  const cmd = /^CMD\s+([\s\S]*)$/i.exec(instruction.rest)
  assert.ok(cmd !== null, `Dockerfile:${instruction.line}: HEALTHCHECK needs CMD <command> (got "${instruction.rest}")`)
  return execForm(cmd[1]!) ?? ['/bin/sh', '-c', cmd[1]!]
}

interface KnownPath {
  /** absolute path inside the stage's file system */
  target: string
  /** where it came from */
  kind: 'context' | 'produced' | 'stage'
  /** for context copies: the repository path it came from */
  repo?: string
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const within = (path: string, dir: string): boolean => path === dir || path.startsWith(dir === '/' ? '/' : dir + '/')

/** the stage's final WORKDIR, and the paths its COPYs and builds put in place */
function walkStage (stage: Stage): { known: KnownPath[]; workdir: string } {
  let workdir = '/'
  const known: KnownPath[] = []
  for (const instruction of stage.instructions) {
    if (instruction.keyword === 'WORKDIR') workdir = posix.resolve(workdir, instruction.rest.trim())
    if (instruction.keyword === 'COPY' || instruction.keyword === 'ADD') {
      const { sources, dest, destIsDir } = copyParts(instruction)
      const destination = posix.resolve(workdir, dest)
      for (const source of sources) {
        const from = instruction.flags.get('from')
        if (from !== undefined) {
          known.push({ target: destIsDir ? posix.join(destination, posix.basename(source)) : destination, kind: 'stage' })
          continue
        }
        const repo = repoPath(source)
        const isDir = existsSync(join(REPO, repo)) && statSync(join(REPO, repo)).isDirectory()
        // a directory's contents go into dest; a file goes to dest, or into it when dest is a dir
        const target = isDir || !destIsDir ? destination : posix.join(destination, posix.basename(repo))
        known.push({ target, kind: 'context', repo })
      }
    }
    if (instruction.keyword === 'RUN' && /\bnpm\s+(ci|install)\b/.test(instruction.rest)) {
      known.push({ target: posix.join(workdir, 'node_modules'), kind: 'produced' })
      // package.json's prepare script compiles src/ with tsconfig.build.json into dist/
      const copied = (p: string): boolean => known.some((k) => k.kind === 'context' && within(posix.join(workdir, p), k.target))
      if (copied('src') && copied('tsconfig.build.json') && copied('package.json')) known.push({ target: posix.join(workdir, 'dist'), kind: 'produced' })
    }
  }
  return { known, workdir }
}

function copyParts (instruction: Instruction): { sources: string[]; dest: string; destIsDir: boolean } {
  const parts = instruction.exec ?? instruction.rest.split(/\s+/).filter((p) => p !== '')
  assert.ok(parts.length >= 2, `Dockerfile:${instruction.line}: ${instruction.keyword} needs a source and a destination`)
  const dest = parts.at(-1)!
  const sources = parts.slice(0, -1)
  return { sources, dest, destIsDir: dest.endsWith('/') || sources.length > 1 }
}

/** a build-context path as a repository-relative path ('' for the whole context) */
function repoPath (source: string): string {
  const normal = posix.normalize(source).replace(/^\/+/, '').replace(/\/+$/, '')
  return normal === '.' ? '' : normal
}

function stageByRef (dockerfile: Dockerfile, ref: string, before: Stage): Stage | undefined {
  const earlier = dockerfile.stages.slice(0, before.index)
  return /^\d+$/.test(ref) ? earlier[Number(ref)] : earlier.find((s) => s.name === ref)
}

// ---------------------------------------------------------------------------------------------
// .dockerignore

function dockerignorePatterns (text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
}

function dockerIgnored (patterns: string[], path: string): boolean {
  let ignored = false
  for (const raw of patterns) {
    const negate = raw.startsWith('!')
    const pattern = posix.normalize(negate ? raw.slice(1) : raw).replace(/^\/+/, '').replace(/\/+$/, '')
    const escapeRe = (s: string): string => s.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    const body = pattern.replace(/^\*\*\//, '\u0000').split('**').map((part) =>
      part.split('*').map((p) => p.split('?').map(escapeRe).join('[^/]')).join('[^/]*')).join('.*').replace('\u0000', '(?:.*/)?')
    // a pattern that matches a directory excludes everything below it
    if (new RegExp(`^${body}(?:/.*)?$`).test(path)) ignored = !negate
  }
  return ignored
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

type Yaml = Record<string, unknown>

/** ${VAR:-default} and friends, as `docker compose up` resolves them with no variable set */
function interpolate (value: string): string {
  return value.replace(/\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_]\w*)/g,
    (whole: string, _name?: string, op?: string, arg?: string) => {
      if (whole === '$$') return '$'
      if (op === ':-' || op === '-') return interpolate(arg ?? '')
      return '' // ${VAR}, $VAR, ${VAR:+alt}: unset; ${VAR:?message}: compose would refuse to start
    })
}

function interpolateAll (value: unknown): unknown {
  if (typeof value === 'string') return interpolate(value)
  if (Array.isArray(value)) return value.map(interpolateAll)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v)]))
  return value
}

function environmentOf (service: Yaml): Record<string, string> {
  const env = service.environment
  if (env === undefined || env === null) return {}
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry) => {
      const [key, ...value] = String(entry).split('=')
      return [key!, value.join('=')]
    }))
  }
  return Object.fromEntries(Object.entries(env as Yaml).map(([k, v]) => [k, v === null ? '' : String(v)]))
}

function dependsOn (service: Yaml): Record<string, string> {
  const deps = service.depends_on
  if (deps === undefined) return {}
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [String(d), 'service_started']))
  return Object.fromEntries(Object.entries(deps as Record<string, Yaml | null>).map(([k, v]) => [k, String(v?.condition ?? 'service_started')]))
}

interface PortMapping { hostIp: string | null; published: string | null; target: string }

function portsOf (service: Yaml): PortMapping[] {
  return ((service.ports ?? []) as unknown[]).map((port) => {
    if (port !== null && typeof port === 'object') {
      const long = port as Yaml
      return { hostIp: long.host_ip === undefined ? null : String(long.host_ip), published: long.published === undefined ? null : String(long.published), target: String(long.target) }
    }
    let spec = String(port).replace(/\/(tcp|udp|sctp)$/, '')
    let hostIp: string | null = null
    const v6 = /^\[([^\]]+)\]:(.*)$/.exec(spec)
    if (v6 !== null) {
      hostIp = v6[1]!
      spec = v6[2]!
    }
    const parts = spec.split(':')
    if (parts.length >= 3) return { hostIp: parts.slice(0, -2).join(':'), published: parts.at(-2)! || null, target: parts.at(-1)! }
    if (parts.length === 2) return { hostIp, published: parts[0]!, target: parts[1]! }
    return { hostIp, published: null, target: parts[0]! }
  })
}

function portIn (range: string, port: number): boolean {
  const [low, high] = range.split('-').map(Number)
  return port >= low! && port <= (high ?? low)!
}

/** a volume entry's host-side source, when it is a path on the host (a bind mount) */
function bindSource (volume: unknown): string | null {
  if (volume !== null && typeof volume === 'object') {
    const long = volume as Yaml
    if (long.type === 'bind') return String(long.source ?? '(no source)')
    return isHostPath(String(long.source ?? '')) ? String(long.source) : null
  }
  const parts = String(volume).split(':')
  return parts.length > 1 && isHostPath(parts[0]!) ? parts[0]! : null
}

function isHostPath (source: string): boolean {
  return source === '.' || source === '..' || source.startsWith('./') || source.startsWith('../') || source.startsWith('/') || source.startsWith('~')
}

function hasHealthcheck (service: Yaml): boolean {
  const hc = service.healthcheck as Yaml | undefined
  if (hc === undefined || hc.disable === true) return false
  const t = hc.test
  return !(Array.isArray(t) && t[0] === 'NONE') && t !== undefined
}

/** compose durations: 30s, 1m30s, 1500ms, 2h */
function durationMs (value: unknown): number {
  const text = String(value)
  const units: Record<string, number> = { us: 0.001, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
  let total = 0
  let consumed = ''
  for (const part of text.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h)/g)) {
    total += Number(part[1]) * units[part[2]!]!
    consumed += part[0]
  }
  assert.equal(consumed, text, `"${text}" is not a compose duration`)
  return total
}

function commandText (command: unknown): string {
  return Array.isArray(command) ? command.join(' ') : String(command ?? '')
}

// ---------------------------------------------------------------------------------------------
// systemd

type UnitFile = Map<string, Map<string, string[]>>

function parseUnit (text: string): UnitFile {
  const unit: UnitFile = new Map()
  let section: Map<string, string[]> | null = null
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/)
  for (const raw of lines) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      section = unit.get(header[1]!) ?? new Map()
      unit.set(header[1]!, section)
      continue
    }
    const entry = /^([A-Za-z0-9]+)\s*=\s*(.*)$/.exec(line)
    assert.ok(section !== null && entry !== null, `relaykey.service: "${line}" is neither a [Section] nor Key=Value inside one`)
    const values = section.get(entry[1]!) ?? []
    // an empty assignment resets a list setting
    section.set(entry[1]!, entry[2] === '' ? [] : [...values, entry[2]!])
  }
  return unit
}

function unitValue (unit: UnitFile, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1)
}

/** systemd time spans: 30, 30s, 1min 30s, 90sec */
function timeSpanMs (value: string): number {
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1_000
  const units: [RegExp, number][] = [[/^(ms|msec)$/, 1], [/^(s|sec|second|seconds)$/, 1_000], [/^(m|min|minute|minutes)$/, 60_000], [/^(h|hr|hour|hours)$/, 3_600_000]]
  let total = 0
  for (const part of value.matchAll(/(\d+(?:\.\d+)?)\s*([a-z]+)/g)) {
    const unit = units.find(([re]) => re.test(part[2]!))
    assert.ok(unit !== undefined, `relaykey.service: unknown time unit in "${value}"`)
    total += Number(part[1]) * unit[1]
  }
  return total
}

function envFileValues (text: string): Map<string, string> {
  const values = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const entry = /^\s*([A-Za-z_]\w*)=(.*)$/.exec(line)
    if (entry !== null) values.set(entry[1]!, entry[2]!.trim().replace(/^"(.*)"$|^'(.*)'$/, '$1$2'))
  }
  return values
}

// ---------------------------------------------------------------------------------------------
// The files under test
// (read when a test first needs them, so a file that does not parse fails the tests that read it,
// each with the reason)

function memo<T> (make: () => T): () => T {
  let made: { value: T } | null = null
  return () => (made ??= { value: make() }).value
}

const dockerfile = memo(() => parseDockerfile(read('Dockerfile')))
const finalStage = (): Stage | undefined => dockerfile().stages.at(-1)
const ignore = memo(() => dockerignorePatterns(read('.dockerignore')))
const compose = memo(() => interpolateAll(parseYaml(read('docker-compose.yml'))) as Yaml)
const services = (): Record<string, Yaml> => (compose().services ?? {}) as Record<string, Yaml>
const unit = memo(() => parseUnit(read('docs/examples/relaykey.service')))

function service (name: string): Yaml {
  const found = services()[name]
  assert.ok(found !== undefined, `docker-compose.yml: no "${name}" service (services: ${Object.keys(services()).join(', ')})`)
  return found
}

function theFinalStage (): Stage {
  const final = finalStage()
  assert.ok(final !== undefined, 'Dockerfile: no FROM instruction')
  return final
}

// ---------------------------------------------------------------------------------------------
// Dockerfile checks

test('Dockerfile: multi-stage, the build stage installs and builds, the final stage copies from it', () => {
  assert.ok(dockerfile().stages.length >= 2, `Dockerfile: ${dockerfile().stages.length} stage(s); a build stage and a runtime stage are expected`)
  const final = theFinalStage()
  for (const stage of dockerfile().stages) {
    assert.match(stage.base, /^node:20(\.|-|$)/, `Dockerfile: stage ${stage.name ?? stage.index} is FROM "${stage.base}", not a Node 20 image`)
  }
  const fromBuild = all(final, 'COPY').map((c) => c.flags.get('from')).filter((f): f is string => f !== undefined)
  assert.ok(fromBuild.length > 0, 'Dockerfile: the final stage copies nothing from an earlier stage (COPY --from=…)')
  for (const ref of fromBuild) {
    const source = stageByRef(dockerfile(), ref, final)
    assert.ok(source !== undefined, `Dockerfile: COPY --from=${ref} names no earlier stage`)
    const install = all(source, 'RUN').find((r) => /\bnpm\s+ci\b/.test(r.rest))
    assert.ok(install !== undefined, `Dockerfile: stage ${ref}, copied from by the final stage, runs no npm ci`)
    assert.match(install.rest, /--omit=dev\b/, `Dockerfile:${install.line}: the build's npm ci should be the production install (--omit=dev), which builds dist/ through prepare`)
    const before = source.instructions.slice(0, source.instructions.indexOf(install))
    const tools = before.filter((i) => i.keyword === 'RUN').map((i) => i.rest).join(' ')
    for (const tool of ['python3', 'make', 'g++']) {
      assert.ok(new RegExp(`(^|\\s)${tool.replace(/\+/g, '\\+')}(\\s|$)`).test(tools), `Dockerfile: stage ${ref} does not install ${tool} before npm ci (better-sqlite3 compiles when no prebuilt binary fits)`)
    }
  }
  assert.ok(!all(final, 'RUN').some((r) => /\bnpm\s+(ci|install)\b/.test(r.rest)), 'Dockerfile: the final stage installs dependencies itself; it should copy them from the build stage')
})

test('Dockerfile: the final stage runs as a non-root user, set before CMD', () => {
  const final = theFinalStage()
  const user = last(final, 'USER')
  assert.ok(user !== undefined, 'Dockerfile: the final stage has no USER, so it runs as root')
  const name = user.rest.trim().split(':')[0]!
  assert.ok(!['root', '0', ''].includes(name), `Dockerfile:${user.line}: USER ${user.rest} is root`)
  const cmd = last(final, 'CMD')
  assert.ok(cmd !== undefined, 'Dockerfile: the final stage has no CMD')
  assert.ok(user.line < cmd.line, `Dockerfile: USER (line ${user.line}) comes after CMD (line ${cmd.line})`)
  const entrypoint = last(final, 'ENTRYPOINT')
  if (entrypoint !== undefined) assert.ok(user.line < entrypoint.line, `Dockerfile: USER (line ${user.line}) comes after ENTRYPOINT (line ${entrypoint.line})`)
})

test('Dockerfile: CMD is `node dist/src/cli.js serve` in exec form, behind an init that forwards signals', () => {
  const final = theFinalStage()
  const cmd = last(final, 'CMD')!
  assert.ok(cmd.exec !== null, `Dockerfile:${cmd.line}: CMD "${cmd.rest}" is in shell form: /bin/sh would receive SIGTERM instead of RelayKey`)
  assert.equal(cmd.exec[0], 'node', `Dockerfile:${cmd.line}: CMD should run node directly (not npm, which does not forward SIGTERM reliably)`)
  const script = cmd.exec.indexOf('dist/src/cli.js')
  assert.ok(script > 0 && cmd.exec[script + 1] === 'serve', `Dockerfile:${cmd.line}: CMD ${JSON.stringify(cmd.exec)} does not run dist/src/cli.js serve`)
  assert.ok(existsSync(join(REPO, 'src/cli.ts')), 'src/cli.ts, which dist/src/cli.js is compiled from, is missing')

  const entrypoint = last(final, 'ENTRYPOINT')
  const composeInit = services().relaykey?.init === true
  if (!composeInit) {
    assert.ok(entrypoint !== undefined, 'Dockerfile: no ENTRYPOINT init (tini) and compose does not set init: true: node would be PID 1, and signals and orphans go unhandled')
    assert.ok(entrypoint.exec !== null, `Dockerfile:${entrypoint.line}: ENTRYPOINT is in shell form`)
    const init = entrypoint.exec[0]!
    assert.match(posix.basename(init), /^(tini|dumb-init|docker-init)$/, `Dockerfile:${entrypoint.line}: ENTRYPOINT ${JSON.stringify(entrypoint.exec)} is not an init`)
    const installed = all(final, 'RUN').some((r) => new RegExp(`(^|\\s)${escapeRegExp(posix.basename(init))}(\\s|$)`).test(r.rest)) ||
      all(final, 'COPY').some((c) => c.rest.includes(posix.basename(init)))
    assert.ok(installed, `Dockerfile: ENTRYPOINT runs ${init}, which the final stage neither installs nor copies`)
  }
  const stop = last(final, 'STOPSIGNAL')
  assert.ok(stop === undefined || stop.rest.trim() === 'SIGTERM', `Dockerfile:${stop?.line}: STOPSIGNAL ${stop?.rest}; RelayKey drains on SIGTERM`)
})

test('Dockerfile: HEALTHCHECK in the final stage probes /ready on the proxy port, with a tool the image has', () => {
  const final = theFinalStage()
  const healthcheck = last(final, 'HEALTHCHECK')
  assert.ok(healthcheck !== undefined, 'Dockerfile: the final stage has no HEALTHCHECK')
  const command = healthcheckCommand(healthcheck)
  assert.ok(command !== null, `Dockerfile:${healthcheck.line}: HEALTHCHECK NONE`)
  const text = command.join(' ')
  assert.match(text, /\/ready\b/, `Dockerfile:${healthcheck.line}: the healthcheck does not probe /ready: ${text}`)
  assert.match(text, /8080|RELAYKEY_PORT/, `Dockerfile:${healthcheck.line}: the healthcheck should use the proxy port (8080 / RELAYKEY_PORT); the admin port needs a token`)
  const tool = posix.basename(command[0] === '/bin/sh' ? command[2]!.trim().split(/\s+/)[0]! : command[0]!)
  if (tool !== 'node') {
    const installed = all(final, 'RUN').some((r) => new RegExp(`(^|\\s)${escapeRegExp(tool)}(\\s|$)`).test(r.rest))
    assert.ok(installed, `Dockerfile:${healthcheck.line}: the healthcheck runs ${tool}, which node:20-bookworm-slim does not have and the final stage does not install`)
  }
})

test('Dockerfile: the final stage sets production, exposes both ports, and gives its user a data volume', () => {
  const final = theFinalStage()
  const env = envOf(final)
  assert.equal(env.get('NODE_ENV'), 'production', 'Dockerfile: the final stage does not set NODE_ENV=production')
  const exposed = all(final, 'EXPOSE').flatMap((e) => e.rest.split(/\s+/)).map((p) => p.replace(/\/tcp$/, ''))
  for (const port of ['8080', '8081']) assert.ok(exposed.includes(port), `Dockerfile: the final stage does not EXPOSE ${port} (has: ${exposed.join(' ') || 'none'})`)
  const dataDir = env.get('RELAYKEY_DATA_DIR')
  assert.ok(dataDir !== undefined && dataDir.startsWith('/'), 'Dockerfile: RELAYKEY_DATA_DIR is not set to an absolute path (the default, ./data under the read-only app directory, is not writable)')
  const user = last(final, 'USER')?.rest.trim().split(':')[0] ?? 'root'
  const chowned = all(final, 'RUN').some((r) => new RegExp(`chown\\s+(-\\S+\\s+)*${escapeRegExp(user)}(:\\S+)?\\s+([^&;]*\\s)?${escapeRegExp(dataDir)}(\\s|$)`).test(r.rest)) ||
    all(final, 'COPY').some((c) => c.flags.has('chown') && c.rest.trim().endsWith(dataDir))
  assert.ok(chowned, `Dockerfile: nothing in the final stage gives ${dataDir} to USER ${user}`)
  const volumes = all(final, 'VOLUME').flatMap((v) => v.exec ?? v.rest.split(/\s+/))
  assert.ok(volumes.includes(dataDir), `Dockerfile: ${dataDir} is not declared a VOLUME`)
})

test('Dockerfile: every COPY source exists in the repository or is built by an earlier stage', () => {
  for (const stage of dockerfile().stages) {
    for (const copy of [...all(stage, 'COPY'), ...all(stage, 'ADD')]) {
      const { sources } = copyParts(copy)
      const from = copy.flags.get('from')
      if (from === undefined) {
        for (const source of sources) {
          assert.ok(!/^[a-z]+:\/\//.test(source), `Dockerfile:${copy.line}: ${copy.keyword} from a URL`)
          const repo = repoPath(source)
          if (stage === finalStage()) assert.notEqual(repo, '', `Dockerfile:${copy.line}: the runtime stage copies the whole build context`)
          assert.ok(existsSync(join(REPO, repo)), `Dockerfile:${copy.line}: ${copy.keyword} ${source}: no such file in the repository`)
          assert.ok(repo === '' || !dockerIgnored(ignore(), repo), `Dockerfile:${copy.line}: ${copy.keyword} ${source}, but .dockerignore excludes it from the build context`)
        }
        continue
      }
      const origin = stageByRef(dockerfile(), from, stage)
      if (origin === undefined) {
        // an image reference (COPY --from=image:tag): not ours to check
        assert.match(from, /[:/]/, `Dockerfile:${copy.line}: COPY --from=${from} names no earlier stage`)
        continue
      }
      const { known } = walkStage(origin)
      for (const source of sources) {
        // --from paths are relative to the other stage's root, not to a WORKDIR
        const path = posix.resolve('/', source)
        const match = known.filter((k) => within(path, k.target)).sort((a, b) => b.target.length - a.target.length)[0]
        assert.ok(match !== undefined, `Dockerfile:${copy.line}: COPY --from=${from} ${source}: stage ${from} neither copies nor builds ${path} (it has: ${known.map((k) => k.target).join(', ')})`)
        if (match.kind === 'context') {
          const repo = posix.join(match.repo!, path.slice(match.target.length))
          assert.ok(existsSync(join(REPO, repo)), `Dockerfile:${copy.line}: COPY --from=${from} ${source} comes from ${repo}, which is not in the repository`)
        }
      }
    }
  }
})

test('Dockerfile: the runtime stage has everything the service reads at run time, under its WORKDIR', () => {
  const final = theFinalStage()
  const { known, workdir } = walkStage(final)
  assert.notEqual(workdir, '/', 'Dockerfile: the final stage has no WORKDIR; CMD\'s dist/src/cli.js is relative to it')
  const needed = {
    'dist/src/cli.js': 'the service command',
    node_modules: 'the dependencies',
    migrations: 'the migrate command and start-up migration',
    'src/admin/openapi.json': 'GET /admin/openapi.json (read at run time from <root>/src/admin/openapi.json)',
    'package.json': 'relaykey --version',
  }
  for (const [path, why] of Object.entries(needed)) {
    const absolute = posix.join(workdir, path)
    assert.ok(known.some((k) => within(absolute, k.target)), `Dockerfile: the runtime stage does not copy ${absolute}, needed by ${why}`)
  }
})

test('.dockerignore keeps node_modules, dist, data, .git and env files out of the build context', () => {
  for (const path of ['node_modules', 'node_modules/pino/package.json', 'data', 'data/admin-token', 'dist', '.git', '.env']) {
    assert.ok(dockerIgnored(ignore(), path), `.dockerignore does not exclude ${path}`)
  }
  for (const path of ['package.json', 'package-lock.json', 'src/cli.ts', 'src/admin/openapi.json', 'migrations/0001_control_plane.sql', 'bin/relaykey.js']) {
    assert.ok(!dockerIgnored(ignore(), path), `.dockerignore excludes ${path}, which the build needs`)
  }
})

// ---------------------------------------------------------------------------------------------
// docker-compose.yml checks

test('compose: no service mounts the source tree or any host path', () => {
  for (const [name, svc] of Object.entries(services())) {
    for (const volume of (svc.volumes ?? []) as unknown[]) {
      const source = bindSource(volume)
      assert.equal(source, null, `docker-compose.yml: service ${name} bind-mounts ${source} (${JSON.stringify(volume)}); the image should hold what runs`)
    }
    const cmd = commandText(svc.command) + ' ' + commandText(svc.entrypoint)
    assert.doesNotMatch(cmd, /\bnpm\s+(ci|install|start)\b/, `docker-compose.yml: service ${name} installs or starts through npm at run time: ${cmd.trim()}`)
  }
  for (const [name, volume] of Object.entries((compose().volumes ?? {}) as Record<string, Yaml | null>)) {
    const options = JSON.stringify(volume?.driver_opts ?? {})
    assert.doesNotMatch(options, /bind/, `docker-compose.yml: volume ${name} is a bind mount in disguise (driver_opts ${options})`)
  }
  for (const [name, config] of Object.entries((compose().configs ?? {}) as Record<string, Yaml>)) {
    assert.ok(config.file === undefined, `docker-compose.yml: config ${name} reads ${String(config.file)} from the host; inline it with content:`)
  }
})

function builtFromDockerfile (name: string): void {
  const svc = service(name)
  assert.ok(svc.build !== undefined, `docker-compose.yml: ${name} is not built from the Dockerfile (image: ${String(svc.image)})`)
  const build = typeof svc.build === 'string' ? { context: svc.build } : svc.build as Yaml
  const context = posix.join(REPO, String(build.context ?? '.'))
  const file = posix.join(context, String(build.dockerfile ?? 'Dockerfile'))
  assert.equal(posix.normalize(file), posix.join(REPO, 'Dockerfile'), `docker-compose.yml: ${name} builds ${file}, not the repository's Dockerfile`)
  assert.doesNotMatch(String(svc.image ?? ''), /^node(:|$)/, `docker-compose.yml: ${name} uses image ${String(svc.image)}`)
}

test('compose: relaykey and migrate are built from the Dockerfile', () => {
  builtFromDockerfile('relaykey')
  builtFromDockerfile('migrate')
  const command = service('relaykey').command
  if (command !== undefined) {
    assert.ok(Array.isArray(command), `docker-compose.yml: relaykey's command is in shell form: ${String(command)}`)
    assert.match(command.join(' '), /dist\/src\/cli\.js serve$/, `docker-compose.yml: relaykey's command does not run dist/src/cli.js serve: ${command.join(' ')}`)
  }
})

function postgresSetup (): { svc: Yaml; user: string; password: string; db: string } {
  const svc = service('postgres')
  assert.match(String(svc.image), /^postgres:/, `docker-compose.yml: the postgres service runs ${String(svc.image)}`)
  const env = environmentOf(svc)
  const user = env.POSTGRES_USER || 'postgres'
  return { svc, user, password: env.POSTGRES_PASSWORD ?? '', db: env.POSTGRES_DB || user }
}

function databaseUrl (name: string): URL {
  const url = environmentOf(service(name)).DATABASE_URL
  assert.ok(url !== undefined && url !== '', `docker-compose.yml: ${name} has no DATABASE_URL`)
  return new URL(url)
}

test('compose: migrate runs `migrate` once, as the administrator, after PostgreSQL is healthy', () => {
  const migrate = service('migrate')
  const command = commandText(migrate.command)
  assert.match(command, /dist\/src\/cli\.js migrate\b|relaykey(\.js)? migrate\b/, `docker-compose.yml: migrate's command does not run the migrate command: ${command}`)
  assert.ok(migrate.restart === undefined || migrate.restart === 'no' || migrate.restart === 'on-failure' || String(migrate.restart).startsWith('on-failure:'),
    `docker-compose.yml: migrate has restart: ${String(migrate.restart)}; a one-shot must not be restarted after it succeeds`)
  const { user, password, db } = postgresSetup()
  const url = databaseUrl('migrate')
  assert.equal(decodeURIComponent(url.username), user, 'docker-compose.yml: migrate should connect as the administrator (POSTGRES_USER): it creates roles and tables')
  assert.equal(decodeURIComponent(url.password), password, 'docker-compose.yml: migrate\'s DATABASE_URL password is not POSTGRES_PASSWORD')
  assert.equal(url.hostname, 'postgres', 'docker-compose.yml: migrate\'s DATABASE_URL does not name the postgres service')
  assert.equal(url.pathname.slice(1), db, `docker-compose.yml: migrate migrates database ${url.pathname.slice(1)}, not POSTGRES_DB (${db})`)
  assert.equal(dependsOn(migrate).postgres, 'service_healthy', 'docker-compose.yml: migrate does not wait for postgres to be healthy')
})

test('compose: relaykey serves as a non-superuser role the init config creates, with start-up migration off', () => {
  const { svc: postgres, user: admin, db } = postgresSetup()
  const url = databaseUrl('relaykey')
  const user = decodeURIComponent(url.username)
  assert.notEqual(user, admin, `docker-compose.yml: relaykey connects as POSTGRES_USER (${admin}), the superuser; the audit table is only append-only for the application role`)
  assert.equal(url.hostname, 'postgres', 'docker-compose.yml: relaykey\'s DATABASE_URL does not name the postgres service')
  assert.equal(url.pathname.slice(1), db, `docker-compose.yml: relaykey uses database ${url.pathname.slice(1)}, not POSTGRES_DB (${db})`)

  const configs = (compose().configs ?? {}) as Record<string, Yaml>
  const initSql = ((postgres.configs ?? []) as unknown[]).flatMap((entry) => {
    const ref = typeof entry === 'string' ? { source: entry, target: `/${entry}` } : entry as Yaml
    return String(ref.target ?? '').startsWith('/docker-entrypoint-initdb.d/') ? [String(configs[String(ref.source)]?.content ?? '')] : []
  }).join('\n')
  assert.ok(initSql !== '', 'docker-compose.yml: postgres mounts no init config (configs: … target: /docker-entrypoint-initdb.d/…) to give the application role its password')
  const statements = [...initSql.matchAll(/\b(CREATE|ALTER)\s+(?:ROLE|USER)\s+"?(\w+)"?([^;]*);/gi)].filter((m) => m[2] === user)
  assert.ok(statements.length > 0, `docker-compose.yml: the postgres init config does not create or alter role ${user}`)
  const options = statements.map((m) => m[3]!).join(' ')
  assert.doesNotMatch(options, /\bSUPERUSER\b/i, `docker-compose.yml: the init config makes ${user} a superuser`)
  assert.ok(/\bNOSUPERUSER\b/i.test(options) || user === 'relaykey_app', `docker-compose.yml: the init config does not create ${user} NOSUPERUSER`)
  const password = /\bPASSWORD\s+'((?:[^']|'')*)'/i.exec(options)
  assert.ok(password !== null, `docker-compose.yml: the init config gives ${user} no password`)
  assert.equal(password[1]!.replace(/''/g, '\''), decodeURIComponent(url.password), `docker-compose.yml: relaykey's DATABASE_URL password is not the one the init config gives ${user}`)
  // the migrations grant the tables to relaykey_app (and only INSERT/SELECT on audit_events)
  assert.match(read('migrations/0003_audit_events.sql'), /CREATE ROLE relaykey_app\b/)
  assert.ok(user === 'relaykey_app' || new RegExp(`GRANT\\s+relaykey_app\\s+TO\\s+"?${user}\\b`, 'i').test(initSql),
    `docker-compose.yml: relaykey connects as ${user}, but the migrations grant their tables to relaykey_app`)

  const env = environmentOf(service('relaykey'))
  assert.equal(env.RELAYKEY_AUTO_MIGRATE, 'false', `docker-compose.yml: relaykey has RELAYKEY_AUTO_MIGRATE=${env.RELAYKEY_AUTO_MIGRATE}; the application role may not run DDL`)
})

test('compose: relaykey waits for a successful migrate and healthy stores; every service has a healthcheck', () => {
  const deps = dependsOn(service('relaykey'))
  assert.equal(deps.migrate, 'service_completed_successfully', `docker-compose.yml: relaykey depends on migrate with ${deps.migrate ?? 'nothing'}; it should wait for it to complete successfully`)
  assert.equal(deps.postgres, 'service_healthy', 'docker-compose.yml: relaykey does not wait for postgres to be healthy')
  assert.equal(deps.redis, 'service_healthy', 'docker-compose.yml: relaykey does not wait for redis to be healthy')
  assert.ok(hasHealthcheck(service('postgres')), 'docker-compose.yml: postgres has no healthcheck')
  assert.ok(hasHealthcheck(service('redis')), 'docker-compose.yml: redis has no healthcheck')
  const relaykey = service('relaykey')
  const disabled = (relaykey.healthcheck as Yaml | undefined)?.disable === true
  const final = finalStage()
  const image = final === undefined ? undefined : last(final, 'HEALTHCHECK')
  assert.ok(hasHealthcheck(relaykey) || (!disabled && image !== undefined && healthcheckCommand(image) !== null),
    'docker-compose.yml: relaykey has no healthcheck (none in compose, none in the image)')
})

test('compose: the admin port is published on 127.0.0.1 only, the proxy port is published', () => {
  const relaykey = service('relaykey')
  const env = environmentOf(relaykey)
  const adminPort = Number(env.RELAYKEY_ADMIN_PORT ?? 8081)
  const proxyPort = Number(env.RELAYKEY_PORT ?? 8080)
  assert.ok(relaykey.network_mode !== 'host', 'docker-compose.yml: relaykey uses the host network: its admin port is bound on the host directly')
  const ports = portsOf(relaykey)
  const admin = ports.filter((p) => portIn(p.target, adminPort) && p.published !== null)
  assert.ok(admin.length > 0, `docker-compose.yml: relaykey does not publish the admin port ${adminPort} (on 127.0.0.1)`)
  for (const mapping of admin) {
    assert.ok(mapping.hostIp !== null && ['127.0.0.1', '::1', 'localhost'].includes(mapping.hostIp),
      `docker-compose.yml: the admin port ${adminPort} is published on ${mapping.hostIp ?? 'every interface'}, not on 127.0.0.1 only`)
  }
  assert.equal(env.RELAYKEY_ADMIN_HOST, '0.0.0.0', 'docker-compose.yml: the admin port is published but RELAYKEY_ADMIN_HOST is not 0.0.0.0: inside the container it listens on 127.0.0.1, where no published port reaches')
  assert.ok(ports.some((p) => portIn(p.target, proxyPort) && p.published !== null), `docker-compose.yml: relaykey does not publish the proxy port ${proxyPort}`)
})

test('compose: relaykey\'s environment is one RelayKey accepts, with placeholder secrets marked change-me', () => {
  const env = environmentOf(service('relaykey'))
  const final = finalStage()
  const image = final === undefined ? {} : Object.fromEntries(envOf(final))
  let config
  try {
    config = loadConfig({ ...image, ...env })
  } catch (err) {
    assert.fail(`docker-compose.yml: RelayKey refuses relaykey's environment: ${(err as Error).message}`)
  }
  assert.equal(config.mode, 'distributed', 'docker-compose.yml: relaykey is not in distributed mode (DATABASE_URL and REDIS_URL)')
  assert.equal(config.autoMigrate, false, 'docker-compose.yml: RelayKey would migrate at start as relaykey, which the application role may not do')
  assert.equal(new URL(config.redisUrl!).hostname, 'redis', 'docker-compose.yml: relaykey\'s REDIS_URL does not name the redis service')
  for (const secret of ['RELAYKEY_ADMIN_TOKEN', 'RELAYKEY_HMAC_SECRET', 'RELAYKEY_MASTER_KEY']) {
    assert.match(env[secret] ?? '', /change-me/i, `docker-compose.yml: the default of ${secret} is not marked change-me: a real-looking secret in a committed file gets used`)
  }
  const header = read('docker-compose.yml').split('\n').filter((l) => l.startsWith('#')).join('\n')
  assert.match(header, /docker compose up/, 'docker-compose.yml: the header comment does not say how to start it')
  assert.match(header, /openssl rand -hex 32/, 'docker-compose.yml: the header comment does not say how to generate secrets')
})

test('compose: stop_grace_period lets the SIGTERM drain finish', () => {
  const relaykey = service('relaykey')
  const grace = Number(environmentOf(relaykey).RELAYKEY_SHUTDOWN_GRACE_MS ?? DEFAULT_GRACE_MS)
  assert.ok(relaykey.stop_grace_period !== undefined, 'docker-compose.yml: relaykey has no stop_grace_period; Docker\'s default 10 s kills it mid-drain')
  const period = durationMs(relaykey.stop_grace_period)
  assert.ok(period > grace + BACKSTOP_MS, `docker-compose.yml: stop_grace_period ${String(relaykey.stop_grace_period)} is not above RELAYKEY_SHUTDOWN_GRACE_MS (${grace} ms) + ${BACKSTOP_MS} ms`)
  assert.ok(relaykey.stop_signal === undefined || relaykey.stop_signal === 'SIGTERM', `docker-compose.yml: relaykey's stop_signal is ${String(relaykey.stop_signal)}`)
})

// ---------------------------------------------------------------------------------------------
// systemd unit checks

test('systemd unit: runs node dist/src/cli.js serve as an unprivileged user, stopped with SIGTERM in time', () => {
  const user = unitValue(unit(), 'Service', 'User')
  assert.ok(user !== undefined && !['root', '0'].includes(user), `relaykey.service: User=${user ?? '(unset: root)'}`)
  const execStart = unitValue(unit(), 'Service', 'ExecStart')
  assert.ok(execStart !== undefined, 'relaykey.service: no ExecStart=')
  const argv = execStart.replace(/^[-@:+!]+/, '').trim().split(/\s+/)
  assert.ok(argv[0]!.startsWith('/') && posix.basename(argv[0]!) === 'node', `relaykey.service: ExecStart runs ${argv[0]}, not node by absolute path (never npm: it does not forward SIGTERM reliably)`)
  const script = argv.findIndex((a) => a.endsWith('dist/src/cli.js'))
  assert.ok(script > 0 && argv[script + 1] === 'serve', `relaykey.service: ExecStart=${execStart} does not run dist/src/cli.js serve`)
  if (!argv[script]!.startsWith('/')) {
    assert.match(unitValue(unit(), 'Service', 'WorkingDirectory') ?? '', /^\//, 'relaykey.service: ExecStart names dist/src/cli.js relatively but WorkingDirectory= is not an absolute path')
  }
  assert.equal(unitValue(unit(), 'Service', 'KillSignal'), 'SIGTERM', 'relaykey.service: KillSignal= should be SIGTERM (RelayKey drains on it)')
  const killMode = unitValue(unit(), 'Service', 'KillMode') ?? 'control-group'
  assert.ok(['mixed', 'control-group'].includes(killMode), `relaykey.service: KillMode=${killMode} leaves workers behind`)

  const envExample = envFileValues(read('docs/examples/relaykey.env.example'))
  const grace = Number(envExample.get('RELAYKEY_SHUTDOWN_GRACE_MS') ?? DEFAULT_GRACE_MS)
  const timeout = unitValue(unit(), 'Service', 'TimeoutStopSec') ?? unitValue(unit(), 'Service', 'TimeoutSec')
  assert.ok(timeout !== undefined, 'relaykey.service: no TimeoutStopSec=')
  assert.ok(timeSpanMs(timeout) > grace + BACKSTOP_MS, `relaykey.service: TimeoutStopSec=${timeout} is not above RELAYKEY_SHUTDOWN_GRACE_MS (${grace} ms) + ${BACKSTOP_MS} ms`)
  assert.ok(['on-failure', 'always', 'on-abnormal'].includes(unitValue(unit(), 'Service', 'Restart') ?? ''), 'relaykey.service: Restart= does not restart a crashed node')
  assert.ok(unitValue(unit(), 'Service', 'EnvironmentFile') !== undefined, 'relaykey.service: no EnvironmentFile= for the secrets')
})

test('systemd unit: hardened, with the data directory the one writable path', () => {
  const yes = (key: string): boolean => ['yes', 'true', 'on', '1'].includes(unitValue(unit(), 'Service', key) ?? '')
  assert.ok(yes('NoNewPrivileges'), 'relaykey.service: NoNewPrivileges= is not set')
  assert.ok(yes('PrivateTmp'), 'relaykey.service: PrivateTmp= is not set')
  assert.ok(['strict', 'full', 'yes', 'true'].includes(unitValue(unit(), 'Service', 'ProtectSystem') ?? ''), 'relaykey.service: ProtectSystem= is not set')
  const envExample = envFileValues(read('docs/examples/relaykey.env.example'))
  const environment = (unit().get('Service')?.get('Environment') ?? []).join(' ')
  const dataDir = envExample.get('RELAYKEY_DATA_DIR') ?? /RELAYKEY_DATA_DIR=(\S+)/.exec(environment)?.[1]
  assert.ok(dataDir !== undefined && dataDir.startsWith('/'), 'relaykey.service: no absolute RELAYKEY_DATA_DIR (Environment= or the env example); the default ./data is inside the read-only install')
  const writable = [
    ...(unit().get('Service')?.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/)).map((p) => p.replace(/^[-+]/, '')),
    ...(unit().get('Service')?.get('StateDirectory') ?? []).flatMap((v) => v.split(/\s+/)).map((d) => `/var/lib/${d}`),
  ]
  assert.ok(writable.some((p) => within(dataDir, p)), `relaykey.service: ${dataDir} (RELAYKEY_DATA_DIR) is not in ReadWritePaths= or StateDirectory=; ProtectSystem= makes it read-only`)
  assert.notEqual(unitValue(unit(), 'Service', 'MemoryDenyWriteExecute'), 'yes', 'relaykey.service: MemoryDenyWriteExecute=yes breaks V8\'s JIT')
})

// ---------------------------------------------------------------------------------------------
// the guide

test('docs/deployment.md: the service command, the install, and files it points to exist', () => {
  const guide = read('docs/deployment.md')
  for (const phrase of ['npm ci --omit=dev', 'node dist/src/cli.js serve', 'SIGTERM', 'relaykey_app', 'RELAYKEY_AUTO_MIGRATE=false']) {
    assert.ok(guide.includes(phrase), `docs/deployment.md does not mention ${phrase}`)
  }
  assert.doesNotMatch(guide, /CONTRACT/, 'docs/deployment.md cites a document that is not part of the repository')
  for (const [, path] of guide.matchAll(/`((?:docs\/examples|migrations)\/[\w.-]+|Dockerfile|docker-compose\.yml|\.dockerignore)`/g)) {
    assert.ok(existsSync(join(REPO, path!)), `docs/deployment.md refers to ${path}, which does not exist`)
  }
  for (const [, link] of guide.matchAll(/\]\(([^)#:]+)(#[^)]*)?\)/g)) {
    assert.ok(existsSync(join(REPO, 'docs', link!)), `docs/deployment.md links to ${link}, which does not exist`)
  }
})
