// Secret held in a file (a mounted Kubernetes/Docker secret); surrounding whitespace is dropped.
import { readFile } from 'node:fs/promises'
import type { StoredSecret } from '../store/model.js'
import { SecretResolutionError, type SecretProvider } from './secret-provider.js'

type FileSecret = Extract<StoredSecret, { provider: 'file' }>

export class FileSecretProvider implements SecretProvider<FileSecret> {
  readonly name = 'file' as const

  async resolve (secret: FileSecret): Promise<string> {
    let value: string
    try {
      value = (await readFile(secret.ref, 'utf8')).trim()
    } catch (err) {
      throw new SecretResolutionError(`secret file ${secret.ref} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    if (value === '') throw new SecretResolutionError(`secret file ${secret.ref} is empty`)
    return value
  }
}
