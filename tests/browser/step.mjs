// Drives a page in headless Chromium over the DevTools protocol on a pipe (no npm package,
// no network): clicks Next until it is disabled, then prints what the page shows as JSON and
// saves a screenshot. Usage: node step.mjs CHROMIUM PAGE.html SCREENSHOT.png [TAB]
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [chromium, page, screenshot, tab] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'anomalies-chromium-'));
const browser = spawn(chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe',
  `--user-data-dir=${profile}`, '--window-size=1200,1600', 'about:blank',
], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
const [, , , toBrowser, fromBrowser] = browser.stdio;

let next = 1;
const waiting = new Map();
let buffer = '';
fromBrowser.on('data', (chunk) => {
  buffer += chunk.toString('utf8');
  let end;
  while ((end = buffer.indexOf('\0')) >= 0) {
    const message = JSON.parse(buffer.slice(0, end));
    buffer = buffer.slice(end + 1);
    const resolve = waiting.get(message.id);
    if (resolve) { waiting.delete(message.id); resolve(message); }
  }
});
function send(method, params = {}, sessionId) {
  const id = next++;
  toBrowser.write(JSON.stringify({ id, method, params, sessionId }) + '\0');
  return new Promise((resolve, reject) => waiting.set(id, (m) => m.error
    ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
}
// The browser's profile goes with it: stop the browser, wait until it has exited (it writes to
// its profile as it goes), remove the profile, and only then exit.
const exited = new Promise((resolve) => browser.on('exit', resolve));
async function finish(code) {
  // Closed over the protocol, the browser removes what it made in TMPDIR; killed, it would not.
  toBrowser.write(JSON.stringify({ id: next++, method: 'Browser.close' }) + '\0');
  const killer = setTimeout(() => browser.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(killer);
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}
const timer = setTimeout(() => { console.error('timed out'); finish(3); }, 30000);
process.on('unhandledRejection', (error) => { console.error(String(error)); finish(4); });

const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
const run = async (expression) => (await send('Runtime.evaluate',
  { expression, returnByValue: true, awaitPromise: true }, sessionId)).result.value;
await send('Page.enable', {}, sessionId);
await send('Page.navigate', { url: `file://${page}` }, sessionId);
for (let i = 0; i < 100 && (await run('document.readyState')) !== 'complete'; i++) {
  await new Promise((r) => setTimeout(r, 50));
}
const section = tab === undefined ? 'section.run:not([hidden])' : `section.run[data-run="${tab}"]`;
if (tab !== undefined) await run(`document.querySelector('.tabs button[data-tab="${tab}"]').click()`);
const before = await run(`document.querySelector('${section} .now').textContent`);
let clicks = 0;
while (!(await run(`document.querySelector('${section} .next').disabled`)) && clicks < 500) {
  await run(`document.querySelector('${section} .next').click()`);
  clicks++;
}
await run(`document.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowLeft' }))`);
const afterLeft = await run(`document.querySelector('${section} .count').textContent`);
await run(`document.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight' }))`);
const state = await run(`(() => {
  const s = document.querySelector('${section}');
  return {
    events: Number(s.dataset.events),
    shown: s.querySelectorAll('.event.shown').length,
    count: s.querySelector('.count').textContent,
    now: s.querySelector('.now').textContent,
    verdictHidden: s.querySelector('.verdict').hidden,
    summary: s.querySelector('.summary').textContent,
    witness: s.querySelector('.witness').textContent,
    tabs: document.querySelectorAll('.tabs button').length,
    visibleRuns: document.querySelectorAll('section.run:not([hidden])').length,
    external: document.querySelectorAll('script[src], link[href], img[src]').length,
  };
})()`);
const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, sessionId);
writeFileSync(screenshot, Buffer.from(shot.data, 'base64'));
clearTimeout(timer);
console.log(JSON.stringify({ before, clicks, afterLeft, ...state }));
await finish(0);
