// An x402 facilitator on a real socket (127.0.0.1, a free port) that answers /verify, /settle
// and /supported well by default and can be told to misbehave per path: answer anything, stall,
// redirect, send garbage, or drop the connection. Every call is recorded with its parsed body.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Socket } from 'node:net'

export type Behaviour =
  | { kind: 'json'; status: number; body: unknown }
  | { kind: 'text'; status: number; body: string }
  /** answers the default after `ms` */
  | { kind: 'slow'; ms: number }
  /** 200 and a JSON body that never ends: a byte every `everyMs` */
  | { kind: 'trickle'; everyMs: number }
  /** 302 to a path that would answer well, so following it would pass */
  | { kind: 'redirect' }
  /** closes the connection without an answer */
  | { kind: 'drop' }

export interface Call {
  method: string
  path: string
  body: any
}

export const PAYER_ADDRESS = '0x' + 'a1'.repeat(20)
export const TRANSACTION = '0x' + 'ab'.repeat(32)

export class MockFacilitator {
  readonly calls: Call[] = []
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly #plans = new Map<string, Behaviour[]>()
  #url = ''

  private constructor () {
    this.#server = createServer((req, res) => { void this.#handle(req, res) })
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
  }

  static async start (): Promise<MockFacilitator> {
    const mock = new MockFacilitator()
    mock.#server.listen(0, '127.0.0.1')
    await once(mock.#server, 'listening')
    mock.#url = `http://127.0.0.1:${(mock.#server.address() as AddressInfo).port}`
    return mock
  }

  /** base URL, as a policy's facilitator_url */
  get url (): string {
    return this.#url
  }

  /** The next calls of `path` behave so, one each; the last one repeats. */
  plan (path: '/verify' | '/settle' | '/supported', ...behaviours: Behaviour[]): void {
    this.#plans.set(path, behaviours)
  }

  callsTo (path: string): Call[] {
    return this.calls.filter((c) => c.path === path)
  }

  async close (): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    this.#server.close()
    await once(this.#server, 'close')
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    const path = req.url ?? '/'
    this.calls.push({ method: req.method ?? '', path, body: text === '' ? null : JSON.parse(text) })
    const plan = this.#plans.get(path)
    const behaviour = plan === undefined || plan.length === 0 ? null : plan.length === 1 ? plan[0]! : plan.shift()!
    switch (behaviour?.kind) {
      case undefined:
        return this.#answerWell(path, text, res)
      case 'json':
        return send(res, behaviour.status, JSON.stringify(behaviour.body), 'application/json')
      case 'text':
        return send(res, behaviour.status, behaviour.body, 'text/html')
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, behaviour.ms))
        if (!res.destroyed) this.#answerWell(path, text, res)
        return
      case 'trickle':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{')
        while (!res.destroyed) {
          await new Promise((resolve) => setTimeout(resolve, behaviour.everyMs))
          if (!res.destroyed) res.write(' ')
        }
        return
      case 'redirect':
        res.writeHead(302, { location: `${path}?followed=1`, 'content-length': '0' })
        res.end()
        return
      case 'drop':
        req.socket.destroy()
    }
  }

  #answerWell (path: string, text: string, res: ServerResponse): void {
    const body = text === '' ? null : JSON.parse(text)
    switch (path.replace(/\?.*$/, '')) {
      case '/verify':
        return send(res, 200, JSON.stringify({ isValid: true, payer: PAYER_ADDRESS }), 'application/json')
      case '/settle':
        return send(res, 200, JSON.stringify({
          success: true, transaction: TRANSACTION, network: body?.paymentRequirements?.network, payer: PAYER_ADDRESS,
        }), 'application/json')
      case '/supported':
        return send(res, 200, JSON.stringify({
          kinds: [{ x402Version: 2, scheme: 'exact', network: 'eip155:84532' }, { x402Version: 1, scheme: 'exact', network: 'base-sepolia' }],
          extensions: [],
          signers: {},
        }), 'application/json')
      default:
        send(res, 404, '{}', 'application/json')
    }
  }
}

function send (res: ServerResponse, status: number, body: string, type: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
