// The shape of src/'s imports: no import cycles, and the layering between its folders. Every
// relative import of every src/**/*.ts file counts — static imports and re-exports, `import type`
// (a type-only cycle is still a tangle for a reader), dynamic `import('./x.js')` and type-position
// `import('./x.js').T` — parsed with the TypeScript compiler, so a specifier merely mentioned in a
// comment or a string does not. A failure names each offending edge: file:line and its target.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const SRC = join(ROOT, 'src')

/** the request path: what serves and governs a partner call, and its audit trail */
const DATA_PLANE = ['gateway', 'payments', 'limits', 'audit', 'partner-auth', 'reliability', 'keys', 'secrets', 'telemetry', 'http', 'health']
/** the operator's side: the admin API, the CLI and config as code */
const CONTROL_PLANE = ['admin', 'cli', 'config-file']
/** what the stores may not know about: the request path's front, the control plane, the process shell */
const ABOVE_STORE = ['gateway', 'admin', 'cli', 'process']
/** the process shell (the cluster's primary and workers, and what wires them) and what may start it */
const SHELL_USERS = ['cli.ts', 'cli', 'process']
/** concrete stores and their choice: the process shell wires them; the request path uses their interfaces */
const CONCRETE_STORES = ['store/redis/', 'store/sqlite/', 'store/postgres/', 'store/open-control-store.ts']
/** the request path but audit/, which owns its sinks (PostgreSQL COPY, SQLite writer) and their choice */
const STORE_AGNOSTIC = DATA_PLANE.filter((folder) => folder !== 'audit')
/** checks shared by the admin API and the data plane: they stand on their own */
const NEUTRAL = ['validation']

interface Edge {
  /** src-relative, with '/' */
  from: string
  to: string
  line: number
  specifier: string
}

function tsFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return tsFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

function srcPath (path: string): string {
  return relative(SRC, path).split(sep).join('/')
}

/** every module specifier a file names, with the line it is on */
function specifiers (source: ts.SourceFile): Array<{ specifier: string, line: number }> {
  const found: Array<{ specifier: string, line: number }> = []
  const add = (node: ts.Node | undefined): void => {
    if (node !== undefined && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) {
      found.push({ specifier: node.text, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1 })
    }
  }
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier)
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0])
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

function importGraph (): { files: string[], edges: Edge[], unresolved: string[] } {
  const paths = tsFiles(SRC)
  const files = paths.map(srcPath).sort()
  const known = new Set(files)
  const edges: Edge[] = []
  const unresolved: string[] = []
  for (const path of paths) {
    const from = srcPath(path)
    const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2023, true)
    for (const { specifier, line } of specifiers(source)) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue
      const target = resolve(dirname(path), specifier)
      const to = srcPath(target.endsWith('.js') ? `${target.slice(0, -3)}.ts` : target)
      if (known.has(to)) edges.push({ from, to, line, specifier })
      else if (!(to.endsWith('.json') && existsSync(target))) unresolved.push(`${from}:${line} ${specifier}`)
    }
  }
  return { files, edges, unresolved }
}

/** the strongly connected components of more than one file, and files importing themselves (Tarjan) */
function cycles (files: readonly string[], edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>(files.map((file) => [file, []]))
  for (const edge of edges) next.get(edge.from)!.push(edge.to)
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const connect = (file: string): void => {
    index.set(file, index.size)
    low.set(file, index.get(file)!)
    stack.push(file)
    onStack.add(file)
    for (const to of next.get(file)!) {
      if (!index.has(to)) {
        connect(to)
        low.set(file, Math.min(low.get(file)!, low.get(to)!))
      } else if (onStack.has(to)) {
        low.set(file, Math.min(low.get(file)!, index.get(to)!))
      }
    }
    if (low.get(file) !== index.get(file)) return
    const component: string[] = []
    let member: string
    do {
      member = stack.pop()!
      onStack.delete(member)
      component.push(member)
    } while (member !== file)
    if (component.length > 1 || next.get(file)!.includes(file)) found.push(component.sort())
  }
  for (const file of files) if (!index.has(file)) connect(file)
  return found
}

function folderOf (file: string): string {
  const slash = file.indexOf('/')
  return slash === -1 ? file : file.slice(0, slash)
}

function describeEdge (edge: Edge): string {
  return `  src/${edge.from}:${edge.line} imports src/${edge.to} ('${edge.specifier}')`
}

/** the edges `forbidden` picks, one a line, for the failure message */
function offending (edges: readonly Edge[], forbidden: (edge: Edge) => boolean): string {
  return edges.filter(forbidden).map(describeEdge).join('\n')
}

describe('src/ import graph', () => {
  const { files, edges, unresolved } = importGraph()

  it('follows every relative import to a file of src/', () => {
    assert.ok(files.length > 100, `only ${files.length} files found under ${SRC}`)
    assert.ok(edges.length > files.length, `only ${edges.length} imports found`)
    assert.equal(unresolved.join('\n'), '', 'relative imports that name no file of src/')
  })

  it('has no import cycles', () => {
    const report = cycles(files, edges).map((component) => {
      const members = new Set(component)
      const inside = edges.filter((edge) => members.has(edge.from) && members.has(edge.to))
      return `a cycle of ${component.length} files: ${component.map((file) => `src/${file}`).join(', ')}\n${inside.map(describeEdge).join('\n')}`
    })
    assert.equal(report.join('\n'), '', 'files that import each other, directly or through others')
  })

  it(`keeps the data plane (${DATA_PLANE.join(', ')}) free of the control plane (${CONTROL_PLANE.join(', ')})`, () => {
    const found = offending(edges, (edge) => DATA_PLANE.includes(folderOf(edge.from)) && CONTROL_PLANE.includes(folderOf(edge.to)))
    assert.equal(found, '', 'data-plane files importing the control plane')
  })

  it(`keeps store/ free of ${ABOVE_STORE.map((folder) => `${folder}/`).join(', ')}`, () => {
    const found = offending(edges, (edge) => folderOf(edge.from) === 'store' && ABOVE_STORE.includes(folderOf(edge.to)))
    assert.equal(found, '', 'store files importing the layers above the stores')
  })

  it(`keeps ${STORE_AGNOSTIC.map((folder) => `${folder}/`).join(', ')} free of concrete stores (the process shell picks them)`, () => {
    const found = offending(edges, (edge) => STORE_AGNOSTIC.includes(folderOf(edge.from)) && CONCRETE_STORES.some((store) => edge.to.startsWith(store)))
    assert.equal(found, '', 'request-path files importing a concrete store')
  })

  it(`keeps ${NEUTRAL.map((folder) => `${folder}/`).join(', ')} free of everything but itself and src/errors.ts`, () => {
    const found = offending(edges, (edge) => NEUTRAL.includes(folderOf(edge.from)) && folderOf(edge.to) !== folderOf(edge.from) && edge.to !== 'errors.ts')
    assert.equal(found, '', 'shared checks importing other parts of src/')
  })

  it('lets only src/cli.ts, cli/ and process/ import process/', () => {
    const found = offending(edges, (edge) => folderOf(edge.to) === 'process' && !SHELL_USERS.includes(folderOf(edge.from)))
    assert.equal(found, '', 'files outside the process shell importing it')
  })
})
