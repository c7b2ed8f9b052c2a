// The audit pipeline's in-memory queue: a fixed-capacity FIFO ring buffer.
//
//            head              tail
//             v                 v
//   [ . . . . e1 e2 e3 e4 e5 e6 . . . . ]   `capacity` slots, allocated once
//             \____ length ____/
//
//   push() writes at tail, take() reads from head; both wrap to 0 at `capacity`.
//   length === capacity means full: push() refuses and the caller decides —
//   nothing is ever overwritten, so nothing is lost silently.
//
// Why not an array that the flush swaps for a fresh one: a flush takes at most `batchSize`
// events, and taking a prefix of a plain array (splice/slice) copies the remainder every time,
// while the swap grows a new array per interval. The ring never reallocates, push is O(1), a
// batch costs O(batch) and the bound is exact. Taken slots are cleared so events can be freed.

export class EventQueue<T> {
  readonly #slots: Array<T | undefined>
  readonly #capacity: number
  #head = 0
  #length = 0

  constructor (capacity: number) {
    this.#capacity = capacity
    this.#slots = new Array<T | undefined>(capacity).fill(undefined)
  }

  get length (): number {
    return this.#length
  }

  get capacity (): number {
    return this.#capacity
  }

  /** HOT PATH: one call per request; false when full (the caller decides where the item goes) */
  push (item: T): boolean {
    if (this.#length === this.#capacity) return false
    let tail = this.#head + this.#length
    if (tail >= this.#capacity) tail -= this.#capacity
    this.#slots[tail] = item
    this.#length++
    return true
  }

  /** the item at the head, left in place */
  peek (): T | undefined {
    return this.#length === 0 ? undefined : this.#slots[this.#head]
  }

  /** removes and returns up to `max` items from the head, oldest first */
  take (max: number): T[] {
    const count = Math.min(max, this.#length)
    const out = new Array<T>(count)
    let head = this.#head
    for (let i = 0; i < count; i++) {
      out[i] = this.#slots[head] as T
      this.#slots[head] = undefined
      if (++head === this.#capacity) head = 0
    }
    this.#head = head
    this.#length -= count
    return out
  }
}
