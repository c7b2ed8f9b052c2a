// A config file (relaykey.yaml, or JSON) read with the position of every node kept, so an error
// names the file, the line and the field (docs/gitops.md).
import { readFileSync } from 'node:fs'
import { LineCounter, parseDocument, type Document } from 'yaml'

export type FieldPath = Array<string | number>

export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError'
  readonly file: string
  readonly line: number | null
  readonly field: string
  constructor (file: string, line: number | null, field: string, message: string) {
    super(`${file}${line === null ? '' : `:${line}`}: ${field === '' ? '' : `${field}: `}${message}`)
    this.file = file
    this.line = line
    this.field = field
  }
}

export class ConfigFile {
  readonly path: string
  /** the document as plain data */
  readonly body: unknown
  readonly #doc: Document
  readonly #lines: LineCounter

  private constructor (path: string, doc: Document, lines: LineCounter) {
    this.path = path
    this.#doc = doc
    this.#lines = lines
    try {
      this.body = doc.toJS({ maxAliasCount: 100 })
    } catch (err) {
      throw new ConfigFileError(path, null, '', `cannot be read as data: ${(err as Error).message}`)
    }
  }

  /** throws ConfigFileError for a file that cannot be read or parsed (the line of the first problem) */
  static read (path: string): ConfigFile {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new ConfigFileError(path, null, '', `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    return ConfigFile.parse(path, text)
  }

  static parse (path: string, text: string): ConfigFile {
    const lines = new LineCounter()
    // YAML 1.2 reads JSON too; a key given twice in one mapping is an error, not a silent overwrite
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
    const problem = doc.errors[0] ?? doc.warnings[0]
    if (problem !== undefined) {
      const line = problem.linePos?.[0]?.line ?? lines.linePos(problem.pos[0]).line
      throw new ConfigFileError(path, line, '', `not valid YAML or JSON: ${problem.message.split('\n')[0]}`)
    }
    return new ConfigFile(path, doc, lines)
  }

  /** the 1-based line of the node at `path`, or of its nearest ancestor that exists */
  lineOf (path: FieldPath): number | null {
    for (let n = path.length; n >= 0; n--) {
      const node = this.#doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined
      if (node?.range !== undefined) return this.#lines.linePos(node.range[0]).line
      // a mapping's key is where a scalar member's line is; getIn on the pair's parent finds it
    }
    return null
  }

  error (path: FieldPath, message: string): ConfigFileError {
    return new ConfigFileError(this.path, this.lineOf(path), fieldName(path), message)
  }
}

/** `credentials[2].secret.ref` */
export function fieldName (path: FieldPath): string {
  let out = ''
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`
  return out
}
