// End-to-end test of the web page in headless Debian Chromium, driven by
// playwright-core (no bundled browser). tests/e2e/run.sh starts the fake
// Azure OpenAI server and the test host and sets the environment:
//   APP_URL, FAKE_URL, RAGSPIN_USER, RAGSPIN_PASSWORD, CHROMIUM,
//   USER_DATA_DIR (fresh), OUT (screenshots), FIXTURES (tests/fixtures/docs),
//   UNIT_PASSED (the SSE unit tests that passed before, added to the count)
// Steps run in order and stop at the first failure; the last line is
// `e2e: N passed, N failed[, N skipped]`.
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run tests/e2e/run.sh)`);
  return value;
};
const APP = env('APP_URL').replace(/\/$/, '');
const FAKE = env('FAKE_URL').replace(/\/$/, '');
const USER = env('RAGSPIN_USER');
const PASSWORD = env('RAGSPIN_PASSWORD');
const OUT = env('OUT');
const FIXTURES = env('FIXTURES');
mkdirSync(OUT, { recursive: true });

const INDEX = 'handbook';
const PORT_QUESTION = 'Which port must be open in the firewall for peers to connect?';
const CAFE_QUESTION = 'When does the café open?';

const context = await chromium.launchPersistentContext(env('USER_DATA_DIR'), {
  executablePath: env('CHROMIUM'),
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 860 },
  timeout: 60_000,
});
context.setDefaultTimeout(30_000);
const page = context.pages()[0] || (await context.newPage());

// Everything the page does is watched: errors, CSP violations, requests
// that leave the app's origin.
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
});
page.on('request', (r) => {
  const url = r.url();
  if (!url.startsWith(`${APP}/`) && !url.startsWith('data:') && !url.startsWith('blob:')) {
    problems.push(`request outside the app: ${url}`);
  }
});
await context.exposeFunction('__cspViolation', (what) => problems.push(`CSP violation: ${what}`));
await context.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`);
  });
});
const responses = [];
page.on('response', (r) => responses.push({ url: r.url(), status: r.status(), type: r.headers()['content-type'] || '' }));

let passed = 0;
let failed = 0;
const STEPS = [];
const step = (name, fn) => STEPS.push({ name, fn });
const shot = (name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
const assert = (ok, message) => {
  if (!ok) throw new Error(message);
};

async function waitForAnswer(nth) {
  const answer = page.locator('.msg.assistant').nth(nth);
  await answer.locator('xpath=self::*[@aria-busy="false"]').waitFor({ timeout: 60_000 });
  return answer;
}

// ------------------------------------------------------------------ steps

step('the login page loads its assets from the app only', async () => {
  const res = await page.goto(`${APP}/`);
  assert(res.status() === 200, `GET / answered ${res.status()}`);
  const csp = res.headers()['content-security-policy'] || '';
  assert(csp.includes("script-src 'self'"), `CSP: ${csp}`);
  await page.locator('#login-form').waitFor();
  await shot('01-login');
});

step('a wrong password is refused with a message', async () => {
  await page.fill('#username', USER);
  await page.fill('#password', 'not-the-password');
  await page.click('#login-submit');
  await page.locator('#login-error:not(:empty)').waitFor();
  assert(await page.locator('#app-view').isHidden(), 'the app opened with a wrong password');
});

step('logs in', async () => {
  await page.fill('#password', PASSWORD);
  await page.keyboard.press('Enter');
  await page.locator('#app-view').waitFor();
  const who = await page.textContent('#whoami');
  assert(who.includes(USER), `whoami: ${who}`);
  await shot('02-signed-in');
});

step('creates an index', async () => {
  await page.fill('#new-index', 'Not Valid!');
  await page.click('#create-index');
  await page.locator('#index-error:not(:empty)').waitFor();
  await page.fill('#new-index', INDEX);
  await page.click('#create-index');
  await page.waitForFunction((name) => document.querySelector('#index-select').value === name, INDEX);
  await page.locator('#index-error:empty').waitFor({ state: 'attached' });
});

step('uploads a document with the file input and follows it to "indexed"', async () => {
  await page.evaluate(() => {
    window.__stages = [];
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('#documents li.doc')) {
        const s = `${li.dataset.filename}:${li.dataset.stage}`;
        if (window.__stages[window.__stages.length - 1] !== s) window.__stages.push(s);
      }
    }).observe(document.querySelector('#documents'), { childList: true, subtree: true, attributes: true });
  });
  await page.setInputFiles('#file-input', join(FIXTURES, 'guide.md'));
  const row = page.locator('li.doc[data-filename="guide.md"]');
  await row.locator('xpath=self::*[@data-stage="indexed"]').waitFor({ timeout: 90_000 });
  const stages = await page.evaluate(() => window.__stages);
  assert(stages.some((s) => !s.endsWith(':indexed') && !s.endsWith(':queued')), `no progress was shown: ${stages}`);
  const text = await row.textContent();
  assert(/Indexed · \d+ chunks?/.test(text), `row: ${text}`);
  const polled = responses.filter((r) => /\/v1\/indexes\/handbook\/documents\/doc-[0-9a-f]{16}$/.test(r.url));
  assert(polled.length > 0, 'the document status endpoint was never read');
  await shot('03-indexed');
});

step('uploads a PDF by drag and drop', async () => {
  const pdf = readFileSync(join(FIXTURES, 'pages.pdf')).toString('base64');
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], 'pages.pdf', { type: 'application/pdf' }));
    const zone = document.querySelector('#dropzone');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, pdf);
  await page
    .locator('li.doc[data-filename="pages.pdf"]')
    .locator('xpath=self::*[@data-stage="indexed"]')
    .waitFor({ timeout: 90_000 });
  const stats = await page.textContent('#index-stats');
  assert(/2 documents/.test(stats), `stats: ${stats}`);
});

step('asks a question and sees the answer stream in with a citation chip', async () => {
  await page.evaluate(() => {
    window.__partials = [];
    new MutationObserver((records) => {
      for (const r of records) {
        for (const n of r.addedNodes) {
          const box = r.target.closest && r.target.closest('.msg.assistant[aria-busy="true"] .answer-text');
          if (box && n.nodeType === Node.TEXT_NODE && n.data) window.__partials.push(n.data);
        }
      }
    }).observe(document.querySelector('#transcript'), { childList: true, subtree: true });
  });
  await page.fill('#question', PORT_QUESTION);
  await page.keyboard.press('Enter');
  const answer = await waitForAnswer(0);
  const partials = await page.evaluate(() => window.__partials);
  assert(new Set(partials).size >= 2, `the answer did not stream: ${JSON.stringify(partials)}`);
  const stream = responses.find((r) => r.url === `${APP}/v1/query`);
  assert(stream && stream.type.startsWith('text/event-stream'), `query response: ${JSON.stringify(stream)}`);
  const text = await answer.locator('.answer-text').textContent();
  assert(text.includes('7443'), `answer: ${text}`);
  const chip = answer.locator('.chip').first();
  assert((await chip.textContent()).includes('guide.md'), 'no guide.md citation chip');
  assert((await answer.locator('.cite-inline').count()) > 0, 'no inline citation marker');
  assert((await answer.locator('.badge.degraded').count()) === 0, 'degraded without a reason');
  await shot('04-answer');
});

step('opens the citation and sees the source chunk', async () => {
  const chip = page.locator('.msg.assistant').first().locator('.chip').first();
  await chip.focus();
  await page.keyboard.press('Enter');
  const dialog = page.locator('#citation-dialog[open]');
  await dialog.waitFor();
  assert((await page.textContent('#citation-title')).includes('guide.md'), 'title');
  const snippet = await page.textContent('#citation-snippet');
  assert(snippet.includes('7443'), `snippet: ${snippet}`);
  const chunk = await page.textContent('#citation-text');
  assert(chunk.length > snippet.length, 'the source chunk is missing');
  assert((await page.locator('#citation-text mark').count()) === 1, 'the snippet is not highlighted');
  await shot('05-citation');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' }).catch(() => {});
  assert(!(await page.locator('#citation-dialog').getAttribute('open')), 'the dialog did not close');
});

step('copies the answer', async () => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: APP });
  await page.locator('.msg.assistant').first().locator('button.copy').click();
  await page.locator('#status', { hasText: 'copied' }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert(copied.includes('7443') && copied.includes('Sources:'), `clipboard: ${copied}`);
});

step('a degraded answer shows the badge with its reason', async () => {
  const fault = await fetch(`${FAKE}/_fake/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ route: 'chat', status: 400, code: 'content_filter' }),
  });
  assert(fault.ok, `installing the fault: ${fault.status}`);
  try {
    await page.fill('#question', CAFE_QUESTION);
    await page.click('#ask');
    const answer = await waitForAnswer(1);
    const badge = answer.locator('.badge.degraded');
    await badge.waitFor();
    const text = await badge.textContent();
    assert(/Degraded: content filter/.test(text), `badge: ${text}`);
    const chips = await answer.locator('.chip').allTextContents();
    assert(chips.some((c) => /pages\.pdf · p\. 1$/.test(c)), `chips: ${chips}`);
    await shot('06-degraded');
  } finally {
    await fetch(`${FAKE}/_fake/reset`, { method: 'POST' });
  }
});

step('every control has a label and the keyboard reaches the question', async () => {
  const unlabeled = await page.evaluate(() =>
    Array.from(document.querySelectorAll('input, select, textarea, button'))
      .filter((el) => el.offsetParent !== null || el.type === 'file')
      .filter((el) => {
        if (el.tagName === 'BUTTON') return !(el.getAttribute('aria-label') || el.textContent.trim());
        return !(el.labels && el.labels.length) && !el.getAttribute('aria-label');
      })
      .map((el) => el.outerHTML.slice(0, 80)),
  );
  assert(unlabeled.length === 0, `unlabeled: ${unlabeled.join(' | ')}`);
  await page.locator('#index-select').focus();
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement && document.activeElement.id === 'question');
  }
  assert(reached, 'Tab never reached the question box');
});

step('a reload keeps the conversation and its sources', async () => {
  await page.reload();
  await page.locator('#app-view').waitFor();
  await page.locator('.msg.assistant').nth(1).waitFor();
  assert((await page.locator('#transcript > li').count()) === 2, 'the transcript was not restored');
  assert((await page.inputValue('#index-select')) === INDEX, 'the index was not restored');
  assert((await page.locator('.badge.degraded').count()) === 1, 'the degraded badge was not restored');
  await page.locator('.msg.assistant').first().locator('.chip').first().click();
  await page.locator('#citation-dialog[open]').waitFor();
  assert((await page.textContent('#citation-text')).includes('7443'), 'the source text was not kept');
  await page.click('#citation-close');
  await shot('07-reloaded');
});

step('a follow-up goes to the same session', async () => {
  await page.fill('#question', 'And what about the clocks?');
  await page.keyboard.press('Enter');
  const answer = await waitForAnswer(2);
  const text = await answer.textContent();
  assert(!(await answer.locator('.error').count()), `error: ${text}`);
  const bodies = await page.evaluate(() => JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage).find((k) => k.startsWith('ragspin.chat.')))));
  assert(bodies.turns.length === 3 && /^web-[0-9a-f]{24}$/.test(bodies.session_id), 'session');
});

step('is readable at phone width', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `the page is ${overflow}px wider than the screen`);
  await page.locator('#manage:not([open])').waitFor({ state: 'attached' });
  const top = await page.locator('#transcript > li').first().boundingBox();
  assert(top && top.y < 844, `the conversation starts below the first screen (${top && top.y})`);
  await page.screenshot({ path: join(OUT, '08-phone.png') });
  await page.click('#manage > summary');
  await page.locator('#documents li.doc').first().waitFor();
  await shot('08-phone-manage');
  await page.setViewportSize({ width: 1280, height: 860 });
});

step('follows the dark color scheme', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert(bg !== 'rgb(244, 245, 248)', `background: ${bg}`);
  await page.screenshot({ path: join(OUT, '09-dark.png') });
  await page.emulateMedia({ colorScheme: 'light' });
});

step('logs out: the session is revoked and nothing is left in storage', async () => {
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('ragspin.auth')).access_token);
  await page.click('#logout');
  await page.locator('#login-form').waitFor();
  const left = await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith('ragspin.')));
  assert(left.length === 0, `left in storage: ${left}`);
  const me = await fetch(`${APP}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  assert(me.status === 401, `the old token still works: ${me.status}`);
  await shot('10-signed-out');
});

step('no page errors, CSP violations or requests outside the app', async () => {
  assert(problems.length === 0, problems.join('\n'));
});

// ------------------------------------------------------------------ run

let skipped = 0;
for (const [i, { name, fn }] of STEPS.entries()) {
  if (failed) {
    skipped++;
    console.log(`skip - ${name}`);
    continue;
  }
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name} (${Date.now() - started} ms)\n  ${String(e.stack || e).split('\n').join('\n  ')}`);
    await shot(`failed-${String(i + 1).padStart(2, '0')}`).catch(() => {});
  }
}
await context.close();
console.log(`screenshots: ${OUT}`);
// The unit tests run.sh ran before (sse.test.mjs) count too.
const total = passed + Number(process.env.UNIT_PASSED || 0);
console.log(`e2e: ${total} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
