// A stock y-websocket client through the owner's controls: it must stay connected (and quiet) when the session
// ends, and stop for good when its participant is removed (4403), not reconnect in a loop.
// usage: node controls.mjs <ws base, e.g. ws://127.0.0.1:PORT/v1/collab> <sessionId> <token>
// Prints {"ready": true} once synced; then for each stdin line {"await": "ended" | "removed"} prints what it saw.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [base, sessionId, token] = process.argv.slice(2)
const hardStop = setTimeout(() => { console.error('interop: timed out'); process.exit(3) }, 60000)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const waitFor = async (pred, what, ms = 20000) => {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what)
    await sleep(20)
  }
}

let sockets = 0
class CountingWebSocket extends WebSocket {
  constructor (...args) {
    super(...args)
    sockets++
  }
}
const warnings = []
console.warn = (...args) => warnings.push(args.join(' '))

const doc = new Y.Doc()
const provider = new WebsocketProvider(base, sessionId, doc, {
  params: { token }, WebSocketPolyfill: CountingWebSocket, disableBc: true
})
let closed = null
provider.on('closed', (event) => { closed = event.code })
await waitFor(() => provider.synced, 'initial sync')
console.log(JSON.stringify({ ready: true }))

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  const step = JSON.parse(line).await
  if (step === 'ended') {
    await waitFor(() => warnings.some((w) => w.includes('session-ended')), 'the end')
    doc.getText('code').insert(0, '# stock client after the end\n') // refused by the server, kept locally
    console.log(JSON.stringify({ ended: true, connected: provider.wsconnected, sockets }))
  } else if (step === 'removed') {
    await waitFor(() => closed !== null, 'the close')
    console.log(JSON.stringify({ code: closed, shouldConnect: provider.shouldConnect, sockets }))
    break
  }
}
provider.destroy()
clearTimeout(hardStop)
process.exit(0)
