// Cycles one request header over a list of values, one value per request, for autocannon's
// setupRequest: how a scenario spreads its load over many virtual keys (evenly, or skewed when
// the list is a sequence drawn beforehand, see zipf-sequence.ts). The cursor is shared by every
// connection, so consecutive requests (whichever connection sends them) get consecutive values
// and one pass over the list touches each value once.
import type autocannon from 'autocannon'

export class HeaderRotation {
  readonly #name: string
  readonly #values: readonly string[]
  #next = 0
  /** for LoadTarget.setupRequest; bound once here, not per request */
  readonly setupRequest: (request: autocannon.Request) => autocannon.Request

  constructor (name: string, values: readonly string[]) {
    if (values.length === 0) throw new Error(`HeaderRotation ${name}: no values`)
    this.#name = name.toLowerCase()
    this.#values = values
    this.setupRequest = this.#setup.bind(this)
  }

  get size (): number {
    return this.#values.length
  }

  // HOT PATH for the driver, once per request: autocannon hands over a fresh headers object
  // (a copy of the target's headers) every time, so setting one field is all it takes.
  #setup (request: autocannon.Request): autocannon.Request {
    request.headers![this.#name] = this.#values[this.#next]!
    this.#next = this.#next + 1 === this.#values.length ? 0 : this.#next + 1
    return request
  }
}
