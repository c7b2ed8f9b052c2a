// Secret held in a file (a mounted Kubernetes/Docker secret); surrounding whitespace is dropped.
// Only files under RELAYKEY_SECRET_FILES_DIR are read (secret-files-dir.ts).
import type { StoredSecret } from '../store/model.js'
import { readSecretFile, secretFileRefProblem } from './secret-files-dir.js'
import { SecretResolutionError, type SecretProvider } from './secret-provider.js'

type FileSecret = Extract<StoredSecret, { provider: 'file' }>

export class FileSecretProvider implements SecretProvider<FileSecret> {
  readonly name = 'file' as const
  readonly #dir: string | null

  /** `dir`: RELAYKEY_SECRET_FILES_DIR, or null (no file is read) */
  constructor (dir: string | null) {
    this.#dir = dir
  }

  async resolve (secret: FileSecret): Promise<string> {
    const problem = secretFileRefProblem(secret.ref, this.#dir)
    if (problem !== null) throw new SecretResolutionError(`secret file ${secret.ref}: ${problem}`)
    let value: string
    try {
      // symlinks resolved: a link under the directory to a file elsewhere is refused too
      const contents = await readSecretFile(secret.ref, this.#dir!)
      if (contents === null) throw new SecretResolutionError(`secret file ${secret.ref} resolves to a file outside RELAYKEY_SECRET_FILES_DIR`)
      value = contents.trim()
    } catch (err) {
      if (err instanceof SecretResolutionError) throw err
      throw new SecretResolutionError(`secret file ${secret.ref} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    if (value === '') throw new SecretResolutionError(`secret file ${secret.ref} is empty`)
    return value
  }
}
