// One writer's local audit log: append-only segment files under RELAYKEY_DATA_DIR/audit-log that
// hold every event before its client gets the end of its answer.
//
//   record() ─► append(row, waiter) ─► [ this turn's rows ] ─setImmediate─► flush: the turn is a
//                                                                            block (one hash), its
//                                                                            rows + block line one
//                                                                            write() (fdatasync
//                                                                            when fsync=always)
//   segments (by first seq):  [ w.0001 ][ w.5001 ][ w.9001 ← current ]     ▼ waiters' answers end
//                               └ deleted once every event in it is in the database
//
// Group commit: the events of one event-loop turn cost one write() and one hash. A waiter (the request whose
// answer is held) is released when its line is in the file: from then on a kill -9 of the
// process cannot lose it, since the kernel has the bytes. Power loss is bounded by the fsync
// policy: `always` releases waiters only after fdatasync, an interval syncs that often in the
// background, `never` leaves it to the kernel.
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, unlinkSync, writeSync, writevSync } from 'node:fs'
import { join } from 'node:path'
import type { AuditWaiter } from './audit-event.js'
import { blockHash, blockLine, GENESIS_BLOCK_HASH, type AuditBlock } from './audit-block.js'
import type { AuditBatch } from './audit-batch.js'
import { formatLogFileName } from './log-file-name.js'
import { parseLogText, readLogChunk, type LogChunk } from './log-reader.js'

/** 'always', 'never', or the background fdatasync interval in ms */
export type FsyncPolicy = 'always' | 'never' | number

/** a request whose answer waits for its audit event to be in the log */
export type LogWaiter = AuditWaiter

export interface LogSegment {
  readonly name: string
  readonly firstSeq: number
  lastSeq: number
  /** bytes the log has written (and acknowledged) to it */
  bytes: number
  /** open for appends while it is the current segment */
  fd: number | null
  /** fdatasync calls in flight: the fd is closed only once they are done */
  syncing: number
  /** sealed, waiting for its syncs to finish before the fd closes */
  closing: boolean
}

export interface AuditLogOptions {
  dir: string
  writerId: string
  owner: string
  /** bytes of segments this log may hold; past it events are not logged (and reported) */
  maxBytes: number
  /** a segment rolls over once it holds this many bytes */
  segmentBytes: number
  fsync: FsyncPolicy
  /** every turn's rows and block, written or not: memory's queue takes them from here */
  onBatch: (batch: AuditBatch) => void
  /** rows that could not be written (disk full, the bound reached, an I/O error) */
  onWriteFailed: (events: number, firstSeq: number, err: Error | null) => void
}

export class AuditLog {
  readonly #o: AuditLogOptions
  readonly #segments: LogSegment[]
  readonly #flushBound: () => void
  readonly #syncedBound: (err: Error | null) => void
  #bytes: number
  // this turn's rows, not written yet
  #text: string
  #events: number
  #firstSeq: number
  #lastSeq: number
  #minTs: number
  #maxTs: number
  /** the hash of this writer's last block */
  #prevBlockHash: string
  #waiters: LogWaiter[]
  #spare: LogWaiter[]
  #scheduled: boolean
  // fsync=always: waiters whose lines are written, waiting for a sync that started after that
  #syncWaiters: LogWaiter[]
  #syncingWaiters: LogWaiter[]
  #syncInFlight: boolean
  #syncSegment: LogSegment | null
  #dirty: boolean
  #timer: NodeJS.Timeout | null
  #closed: boolean

  constructor (options: AuditLogOptions) {
    this.#o = options
    this.#segments = []
    this.#flushBound = this.flush.bind(this)
    this.#syncedBound = this.#synced.bind(this)
    this.#bytes = 0
    this.#text = ''
    this.#events = 0
    this.#firstSeq = 0
    this.#lastSeq = 0
    this.#minTs = Infinity
    this.#maxTs = -Infinity
    this.#prevBlockHash = GENESIS_BLOCK_HASH
    this.#waiters = []
    this.#spare = []
    this.#scheduled = false
    this.#syncWaiters = []
    this.#syncingWaiters = []
    this.#syncInFlight = false
    this.#syncSegment = null
    this.#dirty = false
    this.#closed = false
    this.#timer = null
    mkdirSync(options.dir, { recursive: true })
    if (typeof options.fsync === 'number') this.#timer = setInterval(this.#syncCurrent.bind(this), options.fsync).unref()
  }

  /** bytes of this writer's segments on disk */
  get bytes (): number { return this.#bytes }
  get segmentCount (): number { return this.#segments.length }
  /** the seq of the newest event written to a segment */
  get writtenSeq (): number {
    const current = this.#segments[this.#segments.length - 1]
    return current === undefined ? 0 : current.lastSeq
  }

  /**
   * HOT PATH: once per event. `row` is its COPY text row (seq consecutive, `ts` its time);
   * `waiter` is released once the row is written (synced, with fsync=always). Rows reach the
   * file in the order they are appended.
   */
  append (seq: number, ts: number, row: string, waiter: LogWaiter | null): void {
    if (this.#events === 0) {
      this.#firstSeq = seq
      this.#minTs = ts
      this.#maxTs = ts
    } else if (ts < this.#minTs) this.#minTs = ts
    else if (ts > this.#maxTs) this.#maxTs = ts
    this.#text += row
    this.#events++
    this.#lastSeq = seq
    if (waiter !== null) this.#waiters.push(waiter)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#flushBound)
    }
  }

  /** writes this turn's lines now (the end of the turn, or someone needs them on disk) */
  flush (): void {
    this.#scheduled = false
    if (this.#events > 0) this.#write()
    const waiters = this.#waiters
    if (waiters.length === 0) return
    // two arrays swapped turn by turn: no allocation per turn
    this.#waiters = this.#spare
    this.#spare = waiters
    if (this.#o.fsync === 'always' && this.#dirty) {
      for (let i = 0; i < waiters.length; i++) this.#syncWaiters.push(waiters[i]!)
      waiters.length = 0
      this.#syncCurrent()
      return
    }
    release(waiters)
  }

  /** every event up to `seq` is in the database: whole segments up to it are deleted */
  committed (seq: number): void {
    const segments = this.#segments
    // the current segment stays: appends go on there
    while (segments.length > 1 && segments[0]!.lastSeq <= seq) this.#delete(segments.shift()!)
  }

  /** this writer's segments, oldest first (the last is the current one) */
  segments (): readonly LogSegment[] {
    return this.#segments
  }

  /** reads a segment from `offset`, up to the bytes written to it */
  read (segment: LogSegment, offset: number, maxEvents: number): Promise<LogChunk> {
    return readLogChunk(join(this.#o.dir, segment.name), this.#o.writerId, offset, maxEvents, segment.bytes)
  }

  /**
   * The rest of the current segment from `offset`, read synchronously: what the drain needs to
   * catch up with the log without another turn's rows slipping in meanwhile. Null when it is
   * not the current segment or cannot be read now.
   */
  readTailSync (segment: LogSegment, offset: number): (Pick<LogChunk, 'rows' | 'blocks' | 'damaged'> & { nextOffset: number }) | null {
    if (segment !== this.#segments[this.#segments.length - 1] || segment.fd === null || segment.closing) return null
    const length = segment.bytes - offset
    if (length <= 0) return { rows: [], blocks: [], damaged: 0, nextOffset: offset }
    const buffer = Buffer.allocUnsafe(length)
    try {
      let done = 0
      while (done < length) {
        const n = readSync(segment.fd, buffer, done, length - done, offset + done)
        if (n === 0) return null
        done += n
      }
    } catch {
      return null
    }
    return { ...parseLogText(buffer.toString('utf8'), this.#o.writerId), nextOffset: segment.bytes }
  }

  /**
   * Writes what is pending, syncs (unless fsync=never) and closes. With `committedSeq` at the
   * newest event every segment goes; otherwise they stay for the next start to replay.
   */
  async close (committedSeq: number): Promise<void> {
    if (this.#closed) return
    this.flush()
    this.#closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    while (this.#syncInFlight || this.#segments.some((s) => s.syncing > 0)) await new Promise((resolve) => setTimeout(resolve, 1))
    release(this.#syncWaiters)
    for (const segment of this.#segments) {
      if (segment.fd === null) continue
      if (this.#o.fsync !== 'never') {
        try { fdatasyncSync(segment.fd) } catch {}
      }
      this.#closeFd(segment)
    }
    if (committedSeq >= this.writtenSeq) {
      for (const segment of this.#segments.splice(0)) this.#delete(segment)
    } else {
      this.committed(committedSeq)
    }
  }

  /** this turn's rows as a block: chained, handed on (memory's queue), and written */
  #write (): void {
    // encoded once: the hash, the write and the shipping all take these bytes
    const rows = Buffer.from(this.#text)
    const events = this.#events
    const firstSeq = this.#firstSeq
    this.#text = ''
    this.#events = 0
    const block: AuditBlock = {
      writer_id: this.#o.writerId,
      first_seq: firstSeq,
      last_seq: this.#lastSeq,
      prev_hash: this.#prevBlockHash,
      hash: blockHash(this.#prevBlockHash, rows),
    }
    this.#prevBlockHash = block.hash
    this.#o.onBatch({ rows, events, firstSeq, lastSeq: this.#lastSeq, minTs: this.#minTs, maxTs: this.#maxTs, blocks: [block] })
    const line = Buffer.from(blockLine(block))
    const bytes = rows.length + line.length
    if (this.#bytes + bytes > this.#o.maxBytes) {
      this.#o.onWriteFailed(events, firstSeq, null)
      return
    }
    let segment: LogSegment
    try {
      segment = this.#target(firstSeq, bytes)
    } catch (err) {
      this.#o.onWriteFailed(events, firstSeq, err as Error)
      return
    }
    try {
      // the rows and their block line in one writev; a short write (a signal, a disk filling
      // up) goes on from where it stopped
      let done = writevSync(segment.fd!, [rows, line])
      if (done < bytes) {
        const buffer = Buffer.concat([rows, line])
        while (done < bytes) done += writeSync(segment.fd!, buffer, done, bytes - done)
      }
    } catch (err) {
      // whatever part reached the file is cut off again (those events count as not logged and
      // must not come back on a replay), and the segment takes nothing more
      try { ftruncateSync(segment.fd!, segment.bytes) } catch {}
      this.#seal(segment)
      this.#o.onWriteFailed(events, firstSeq, err as Error)
      return
    }
    segment.bytes += bytes
    segment.lastSeq = this.#lastSeq
    this.#bytes += bytes
    this.#dirty = true
    // an event recorded after close (a request still finishing): its segment is left for the
    // next start, closed now rather than never
    if (this.#closed) this.#seal(segment)
  }

  /** the current segment, or a new one when it is full, sealed or missing */
  #target (firstSeq: number, bytes: number): LogSegment {
    const current = this.#segments[this.#segments.length - 1]
    if (current !== undefined && current.fd !== null && !current.closing &&
      (current.bytes === 0 || current.bytes + bytes <= this.#o.segmentBytes)) return current
    if (current !== undefined) this.#seal(current)
    const name = formatLogFileName({ writerId: this.#o.writerId, firstSeq, owner: this.#o.owner })
    // read-write: the drain reads the current segment's tail through it (readTailSync)
    const fd = openSync(join(this.#o.dir, name), 'ax+', 0o600)
    syncDir(this.#o.dir)
    const segment: LogSegment = { name, firstSeq, lastSeq: firstSeq - 1, bytes: 0, fd, syncing: 0, closing: false }
    this.#segments.push(segment)
    return segment
  }

  /** no more appends; its data is synced (unless fsync=never) before its fd closes */
  #seal (segment: LogSegment): void {
    if (segment.fd === null || segment.closing) return
    segment.closing = true
    if (this.#o.fsync === 'never') return this.#closeFd(segment)
    if (this.#o.fsync === 'always') {
      // answers waiting for a sync may have their rows here, and the next sync is the new
      // segment's: this one is synced now (once per segment, so rarely)
      try { fdatasyncSync(segment.fd) } catch {}
      return this.#closeFd(segment)
    }
    segment.syncing++
    fdatasync(segment.fd, () => {
      segment.syncing--
      this.#closeFd(segment)
    })
  }

  #closeFd (segment: LogSegment): void {
    if (segment.fd === null || segment.syncing > 0) return
    try { closeSync(segment.fd) } catch {}
    segment.fd = null
  }

  /** fdatasync of the current segment: the interval timer, and fsync=always after each write */
  #syncCurrent (): void {
    if (this.#syncInFlight || !this.#dirty) return
    const current = this.#segments[this.#segments.length - 1]
    if (current === undefined || current.fd === null || current.closing) {
      // sealed segments sync as they close; nothing else is unsynced
      this.#dirty = false
      release(this.#syncWaiters)
      return
    }
    this.#dirty = false
    this.#syncInFlight = true
    current.syncing++
    const waiting = this.#syncWaiters
    this.#syncWaiters = this.#syncingWaiters
    this.#syncingWaiters = waiting
    this.#syncSegment = current
    fdatasync(current.fd, this.#syncedBound)
  }

  #synced (_err: Error | null): void {
    // a failed fdatasync leaves the data in the page cache: a process crash still cannot lose
    // it, and the answer is not held back for what the disk may or may not have
    this.#syncInFlight = false
    const segment = this.#syncSegment!
    this.#syncSegment = null
    segment.syncing--
    if (segment.closing) this.#closeFd(segment)
    release(this.#syncingWaiters)
    if (this.#syncWaiters.length > 0) this.#syncCurrent()
  }

  #delete (segment: LogSegment): void {
    this.#seal(segment)
    try {
      unlinkSync(join(this.#o.dir, segment.name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    this.#bytes -= segment.bytes
  }
}

function release (waiters: LogWaiter[]): void {
  for (let i = 0; i < waiters.length; i++) {
    try {
      waiters[i]!.auditLogged()
    } catch {
      // one answer failing to end must not hold back the others
    }
  }
  waiters.length = 0
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
