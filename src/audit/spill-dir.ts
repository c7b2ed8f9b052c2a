// The spill directory of one audit pipeline: append-only NDJSON files holding the batches the
// sink could not take, kept in replay order, and the leftovers of dead processes claimed from it.
//
//   files (sorted by name = writer, first seq)         current (open for appends)
//   [ w1.0001 ][ w1.0501 ][ w2.0001 ][ me.0001 ][ me.2001 ]
//    ^ oldest: replayed first                  ^ appends go here only while each new batch
//                                                continues its seq range; else a new file
//
// Every append is one write() of the whole batch followed by fdatasync(), so a batch is either
// durable or (after a crash mid-append) a torn last line that the reader counts as damaged.
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, mkdirSync, openSync, write, writeSync } from 'node:fs'
import { readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { ChainedAuditEvent } from './audit-event.js'
import { formatSpillName, newOwner, ownerAlive, parseSpillName, type SpillName } from './spill-name.js'
import { readSpillChunk, type SpillChunk } from './spill-reader.js'

const writeAsync = promisify(write)
const fdatasyncAsync = promisify(fdatasync)

export interface SpillFile {
  /** current name in the directory (it changes when the file is claimed) */
  name: string
  writerId: string
  firstSeq: number
  /** the seq a batch must start with to be appended here; -1 for claimed files */
  nextSeq: number
  bytes: number
  /** bytes already replayed into the sink */
  offset: number
  /** open for appending; null once sealed */
  fd: number | null
  /** an asynchronous append is in flight: nothing else may write to or close the fd */
  busy: boolean
}

export type SpillAppend =
  | { ok: true; bytes: number }
  | { ok: false; reason: 'full' | 'io'; error: Error | null }

export class SpillDir {
  readonly #dir: string
  readonly #writerId: string
  readonly #owner: string
  readonly #maxBytes: number
  readonly #files: SpillFile[]
  #current: SpillFile | null
  #bytes: number

  constructor (options: { dir: string; writerId: string; maxBytes: number }) {
    this.#dir = options.dir
    this.#writerId = options.writerId
    this.#owner = newOwner()
    this.#maxBytes = options.maxBytes
    this.#files = []
    this.#current = null
    this.#bytes = 0
    mkdirSync(this.#dir, { recursive: true })
  }

  /** bytes in the files this pipeline holds (its own and the claimed ones) */
  get bytes (): number {
    return this.#bytes
  }

  get fileCount (): number {
    return this.#files.length
  }

  oldest (): SpillFile | undefined {
    return this.#files[0]
  }

  /** for the queue-full path inside record(), which cannot wait */
  appendSync (batch: readonly ChainedAuditEvent[]): SpillAppend {
    const payload = serialize(batch)
    const target = this.#target(batch, payload.length)
    if (!('fd' in target)) return target
    try {
      let done = 0
      while (done < payload.length) done += writeSync(target.fd!, payload, done)
      fdatasyncSync(target.fd!)
      return { ok: true, bytes: payload.length }
    } catch (err) {
      // whatever part of the batch reached the file is a torn line now; append nothing after it
      this.seal(target)
      return { ok: false, reason: 'io', error: err as Error }
    }
  }

  async append (batch: readonly ChainedAuditEvent[]): Promise<SpillAppend> {
    const payload = serialize(batch)
    const target = this.#target(batch, payload.length)
    if (!('fd' in target)) return target
    target.busy = true
    let error: Error | null = null
    try {
      let done = 0
      while (done < payload.length) done += (await writeAsync(target.fd!, payload, done)).bytesWritten
      await fdatasyncAsync(target.fd!)
    } catch (err) {
      error = err as Error
    }
    target.busy = false
    // after a failure whatever reached the file is a torn line: append nothing after it. And a
    // synchronous append may have moved on to a newer file meanwhile: then this one is done.
    if (error !== null || target !== this.#current) this.seal(target)
    return error === null ? { ok: true, bytes: payload.length } : { ok: false, reason: 'io', error }
  }

  /** no more appends to this file: it is about to be replayed, or the pipeline is closing */
  seal (file: SpillFile): void {
    if (this.#current === file) this.#current = null
    if (file.fd === null || file.busy) return
    const fd = file.fd
    file.fd = null
    try {
      closeSync(fd)
    } catch {}
  }

  sealAll (): void {
    for (const file of this.#files) this.seal(file)
  }

  async read (file: SpillFile, maxEvents: number): Promise<SpillChunk> {
    return readSpillChunk(join(this.#dir, file.name), file.offset, maxEvents)
  }

  /** the file is fully in the sink: delete it (only now, so a crash before this replays it again) */
  async remove (file: SpillFile): Promise<void> {
    this.seal(file)
    await unlink(join(this.#dir, file.name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
    this.forget(file)
  }

  /** stops tracking a file without deleting it; a later process's start() will claim it */
  forget (file: SpillFile): void {
    this.seal(file)
    const at = this.#files.indexOf(file)
    if (at === -1) return
    this.#files.splice(at, 1)
    this.#bytes -= file.bytes
  }

  /**
   * Takes over the files of dead processes. All files of one writer go to one claimer, oldest
   * first, so that writer's events reach the sink in order: a writer with a file held by a live
   * process is left alone, and losing the race for a writer's file means leaving its rest too.
   */
  async claimLeftovers (): Promise<{ files: number; bytes: number; errors: Error[] }> {
    const byWriter = new Map<string, Array<{ file: string; name: SpillName }>>()
    for (const file of (await readdir(this.#dir)).sort()) {
      const name = parseSpillName(file)
      if (name === null || name.owner === this.#owner) continue
      let group = byWriter.get(name.writerId)
      if (group === undefined) byWriter.set(name.writerId, group = [])
      group.push({ file, name })
    }
    let files = 0
    let bytes = 0
    const errors: Error[] = []
    for (const group of byWriter.values()) {
      if (group.some((entry) => ownerAlive(entry.name.owner))) continue
      for (const { file, name } of group) {
        const claimed = formatSpillName({ writerId: name.writerId, firstSeq: name.firstSeq, owner: this.#owner })
        try {
          await rename(join(this.#dir, file), join(this.#dir, claimed))
        } catch (err) {
          // ENOENT: another process took it, and takes the rest of this writer's files too.
          // Anything else (permissions, say): leave the writer for someone who can.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(err as Error)
          break
        }
        const size = (await stat(join(this.#dir, claimed))).size
        this.#insert({ name: claimed, writerId: name.writerId, firstSeq: name.firstSeq, nextSeq: -1, bytes: size, offset: 0, fd: null, busy: false })
        this.#bytes += size
        files++
        bytes += size
      }
    }
    return { files, bytes, errors }
  }

  /** the file a batch goes to (reserving its bytes), or why it cannot be spilled */
  #target (batch: readonly ChainedAuditEvent[], bytes: number): SpillFile | SpillAppend {
    if (batch.length === 0) return { ok: true, bytes: 0 }
    if (this.#bytes + bytes > this.#maxBytes) return { ok: false, reason: 'full', error: null }
    const first = batch[0]!.seq
    let file = this.#current
    if (file === null || file.fd === null || file.busy || file.nextSeq !== first) {
      if (file !== null) this.seal(file)
      const name = formatSpillName({ writerId: this.#writerId, firstSeq: first, owner: this.#owner })
      let fd: number
      try {
        fd = openSync(join(this.#dir, name), 'ax', 0o600)
        syncDir(this.#dir)
      } catch (err) {
        return { ok: false, reason: 'io', error: err as Error }
      }
      file = { name, writerId: this.#writerId, firstSeq: first, nextSeq: first, bytes: 0, offset: 0, fd, busy: false }
      this.#insert(file)
      this.#current = file
    }
    file.nextSeq = batch[batch.length - 1]!.seq + 1
    file.bytes += bytes
    this.#bytes += bytes
    return file
  }

  #insert (file: SpillFile): void {
    let at = this.#files.length
    while (at > 0 && this.#files[at - 1]!.name > file.name) at--
    this.#files.splice(at, 0, file)
  }
}

function serialize (batch: readonly ChainedAuditEvent[]): Buffer {
  let text = ''
  for (let i = 0; i < batch.length; i++) text += JSON.stringify(batch[i]) + '\n'
  return Buffer.from(text)
}

/** makes a new file's directory entry durable too, not just its contents */
function syncDir (dir: string): void {
  let fd: number | null = null
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // some filesystems refuse fsync on a directory; the data itself is still synced
  } finally {
    if (fd !== null) closeSync(fd)
  }
}
