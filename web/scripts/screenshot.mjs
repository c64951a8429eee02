#!/usr/bin/env -S node --experimental-websocket
// Screenshot of a page after it has been open for a while (so the sparklines have history), via
// the DevTools protocol of Debian's headless chromium. Node 20 needs --experimental-websocket.
//
//   node --experimental-websocket scripts/screenshot.mjs http://127.0.0.1:5174/ /tmp/dash.png \
//        --width 1280 --height 900 --wait 40 [--full] [--click '[data-testid=lang-en]' --click ...]
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'

const [url = 'http://127.0.0.1:5174/', out = '/tmp/dash.png', ...rest] = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = rest.indexOf(`--${name}`)
  return i < 0 ? fallback : rest[i + 1]
}
const width = Number(opt('width', 1280))
const height = Number(opt('height', 900))
const waitS = Number(opt('wait', 5))
const clicks = rest.flatMap((arg, i) => (arg === '--click' ? [rest[i + 1]] : []))
const full = rest.includes('--full')
const port = 9300 + Math.floor(Math.random() * 500)

const browser = spawn(
  process.env.CHROMIUM ?? 'chromium',
  ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', `--remote-debugging-port=${port}`,
    `--window-size=${width},${height}`, `--user-data-dir=/tmp/sd-shot-${port}`, 'about:blank'],
  { stdio: 'ignore' },
)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
try {
  let target
  for (let i = 0; i < 50 && !target; i++) {
    await sleep(200)
    target = await fetch(`http://127.0.0.1:${port}/json/list`).then((r) => r.json()).then((l) => l.find((t) => t.type === 'page')).catch(() => null)
  }
  const ws = new WebSocket(target.webSocketDebuggerUrl)
  await new Promise((r) => ws.addEventListener('open', r))
  let seq = 0
  const pending = new Map()
  ws.addEventListener('message', (e) => {
    const msg = JSON.parse(e.data)
    if (pending.has(msg.id)) pending.get(msg.id)(msg.result ?? msg.error)
  })
  const send = (method, params = {}) => new Promise((r) => (pending.set(++seq, r), ws.send(JSON.stringify({ id: seq, method, params }))))
  await send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: width < 600 })
  await send('Page.navigate', { url })
  await sleep(waitS * 1000)
  for (const selector of clicks) {
    // A selector may name a wrapper (a job row): click the button inside it, else the element.
    const target = `document.querySelector(${JSON.stringify(selector)})`
    await send('Runtime.evaluate', { expression: `(${target}?.querySelector('button') ?? ${target})?.click()` })
    await sleep(1500)
  }
  let clip
  if (full) {
    const { result } = await send('Runtime.evaluate', { expression: 'document.documentElement.scrollHeight', returnByValue: true })
    await send('Emulation.setDeviceMetricsOverride', { width, height: result.value, deviceScaleFactor: 1, mobile: width < 600 })
    await sleep(500)
    clip = { x: 0, y: 0, width, height: result.value, scale: 1 }
  }
  const shot = await send('Page.captureScreenshot', { format: 'png', ...(clip ? { clip } : {}) })
  await writeFile(out, Buffer.from(shot.data, 'base64'))
  console.log(`wrote ${out}`)
  ws.close()
} finally {
  browser.kill()
}
