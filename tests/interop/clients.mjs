// Stock Yjs clients against the live endpoint: y-websocket's WebsocketProvider over `ws`, as a page uses it.
// usage: node clients.mjs <ws base, e.g. ws://127.0.0.1:PORT/v1/collab> <sessionId> <tokens JSON> <edits per client>
// Several bases separated by '|' (processes of one cluster): client i connects to base i modulo their number.
// Prints one JSON line when every client converged; then reads one JSON line {"expect": text} from stdin and
// prints {"ok": true} once every client holds that text (a REST write seen live). Exits by itself (bounded).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const [baseArg, sessionId, tokensJson, editsArg] = process.argv.slice(2)
const bases = baseArg.split('|')
const tokens = JSON.parse(tokensJson)
const edits = Number(editsArg)
const hardStop = setTimeout(() => { console.error('interop: timed out'); process.exit(3) }, 60000)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const waitFor = async (pred, what, ms = 20000) => {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what)
    await sleep(20)
  }
}

const clients = tokens.map((token, i) => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(bases[i % bases.length], sessionId, doc, {
    params: { token }, WebSocketPolyfill: WebSocket, disableBc: true
  })
  provider.awareness.setLocalStateField('user', { name: `claimed-${i}`, color: '#123456', colorLight: '#12345633' })
  return { doc, provider, text: doc.getText('code'), meta: doc.getMap('meta') }
})

await waitFor(() => clients.every((c) => c.provider.synced), 'initial sync')
const initial = clients[0].text.toString()

// Concurrent typing: every client inserts markers at random places between markers (never inside one, so
// each can be counted), interleaved with the others; then deletes its first marker again.
await Promise.all(clients.map(async (c, i) => {
  for (let k = 0; k < edits; k++) {
    const s = c.text.toString()
    const gaps = [0, s.length]
    for (let j = 0; j < s.length; j++) if (s[j] === '>' || s[j] === '\n') gaps.push(j + 1)
    c.text.insert(gaps[Math.floor(Math.random() * gaps.length)], `<${i}.${k}>`)
    await sleep(Math.random() * 6)
  }
  const s = c.text.toString()
  const first = `<${i}.0>`
  c.text.delete(s.indexOf(first), first.length)
}))
clients[0].meta.set('language', 'typescript')

const same = () => clients.every((c) => c.text.toString() === clients[0].text.toString())
await waitFor(() => same() && clients.every((c) => c.meta.get('language') === 'typescript'), 'convergence')
// Everyone sees everyone's awareness, with the identity the server stamped.
await waitFor(() => clients.every((c) => c.provider.awareness.getStates().size === clients.length), 'awareness')
const awareness = [...clients[0].provider.awareness.getStates().entries()].map(([id, s]) => ({ id, user: s.user }))
const self = clients[0].doc.clientID
console.log(JSON.stringify({ initial, text: clients[0].text.toString(), awareness, self }))

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  const { expect } = JSON.parse(line)
  await waitFor(() => clients.every((c) => c.text.toString() === expect), 'the REST write')
  console.log(JSON.stringify({ ok: true }))
  break
}
for (const c of clients) c.provider.destroy()
clearTimeout(hardStop)
process.exit(0)
