// The audit log segments of processes that are gone (a crash, a kill -9, a restart), and the
// spill files of older releases: claimed at start, shipped oldest first, deleted once all their
// events are in the database. Rows already stored are skipped by the sink (same id and ts).
//
// Claiming is one rename() per file to this pipeline's owner token: atomic, so of two workers
// starting together exactly one takes a file. All files of one writer go to one claimer, oldest
// first, so that writer's events reach the database in order.
import { readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { formatLogFileName, ownerAlive, parseLogFileName, type LogFileName } from './log-file-name.js'
import { readLogChunk, type LogChunk } from './log-reader.js'

export interface LeftoverFile {
  readonly dir: string
  /** its name once claimed */
  readonly name: string
  readonly writerId: string
  readonly bytes: number
  /** bytes already shipped */
  offset: number
}

export class LeftoverLogs {
  readonly #dirs: readonly string[]
  readonly #owner: string
  readonly #files: LeftoverFile[]
  #bytes: number

  /** `dirs`: where to look, the legacy spill directory included */
  constructor (dirs: readonly string[], owner: string) {
    this.#dirs = dirs
    this.#owner = owner
    this.#files = []
    this.#bytes = 0
  }

  get count (): number { return this.#files.length }
  get bytes (): number { return this.#bytes }

  oldest (): LeftoverFile | undefined {
    return this.#files[0]
  }

  read (file: LeftoverFile, maxEvents: number): Promise<LogChunk> {
    return readLogChunk(join(file.dir, file.name), file.writerId, file.offset, maxEvents)
  }

  /** all of it is in the database: delete it (only now, so a crash before this ships it again) */
  async remove (file: LeftoverFile): Promise<void> {
    await unlink(join(file.dir, file.name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
    this.forget(file)
  }

  /** stops tracking a file without deleting it; a later start claims it again */
  forget (file: LeftoverFile): void {
    const at = this.#files.indexOf(file)
    if (at === -1) return
    this.#files.splice(at, 1)
    this.#bytes -= file.bytes
  }

  /**
   * Takes over the files of dead processes. A writer with a file held by a live process is left
   * alone, and losing the race for a writer's file means leaving its rest too.
   */
  async claim (): Promise<{ files: number; bytes: number; errors: Error[] }> {
    let files = 0
    let bytes = 0
    const errors: Error[] = []
    for (const dir of this.#dirs) {
      let names: string[]
      try {
        names = (await readdir(dir)).sort()
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(err as Error)
        continue
      }
      const byWriter = new Map<string, Array<{ file: string; name: LogFileName }>>()
      for (const file of names) {
        const name = parseLogFileName(file)
        if (name === null || name.owner === this.#owner) continue
        let group = byWriter.get(name.writerId)
        if (group === undefined) byWriter.set(name.writerId, group = [])
        group.push({ file, name })
      }
      for (const group of byWriter.values()) {
        if (group.some((entry) => ownerAlive(entry.name.owner))) continue
        for (const { file, name } of group) {
          const claimed = formatLogFileName({ ...name, owner: this.#owner })
          try {
            await rename(join(dir, file), join(dir, claimed))
          } catch (err) {
            // ENOENT: another process took it, and takes the rest of this writer's files too.
            // Anything else (permissions, say): leave the writer for someone who can.
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(err as Error)
            break
          }
          const size = (await stat(join(dir, claimed))).size
          this.#files.push({ dir, name: claimed, writerId: name.writerId, bytes: size, offset: 0 })
          this.#bytes += size
          files++
          bytes += size
        }
      }
    }
    return { files, bytes, errors }
  }
}
