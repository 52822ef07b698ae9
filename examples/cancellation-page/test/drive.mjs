// Clicks through the cancellation page in headless Chromium: list -> accept offer -> cancel.
// Usage: node drive.mjs '<page url with ?api=…&token=…&offer=…>'
//        node drive.mjs --expect-blocked '<page url>'   (an origin the CRM does not allow: only clicks
//        "Show my subscriptions" and succeeds when the page shows the browser's network error)
// Prints one JSON line with what the page showed after each step; exits non-zero on any failure
// (an error shown on the page, a missing button, a timeout). CHROMIUM overrides /usr/bin/chromium.
import { chromium } from 'playwright-core';

const expectBlocked = process.argv[2] === '--expect-blocked';
const url = process.argv[expectBlocked ? 3 : 2];
if (!url) {
  console.error('usage: node drive.mjs [--expect-blocked] <page url>');
  process.exit(2);
}

const TIMEOUT = 15_000;
let browser;
const consoleErrors = [];

async function settle(page) {
  await page.waitForSelector('body[data-busy="false"]', { timeout: TIMEOUT });
}

async function snapshot(page) {
  return page.evaluate(() => ({
    result: document.getElementById('result').textContent,
    error: document.getElementById('error').textContent,
    list: [...document.querySelectorAll('#subscriptions li')].map((li) => ({
      id: li.dataset.subscription,
      status: li.dataset.status,
      price: li.dataset.price,
      cancelAtPeriodEnd: li.dataset.cancelAtPeriodEnd === 'true',
      text: li.querySelector('div').textContent,
      buttons: [...li.querySelectorAll('button')].map((b) => b.textContent),
    })),
  }));
}

function mustBeClean(step, shown) {
  if (shown.error) throw new Error(`${step}: the page shows the error ${JSON.stringify(shown.error)}`);
}

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    timeout: TIMEOUT,
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(url);

  await page.click('#show');
  await settle(page);
  const listed = await snapshot(page);
  if (expectBlocked) {
    if (!listed.error || listed.list.length) throw new Error(`expected the browser to block: ${JSON.stringify(listed)}`);
    console.log(JSON.stringify({ blocked: listed, consoleErrors }));
    await browser.close();
    process.exit(0);
  }
  mustBeClean('list', listed);
  const target = listed.list.find((s) => s.buttons.includes('Accept offer'));
  if (!target) throw new Error(`list: no subscription offers a winback: ${JSON.stringify(listed)}`);

  await page.click(`li[data-subscription="${target.id}"] button.winback`);
  await settle(page);
  const wonBack = await snapshot(page);
  mustBeClean('winback', wonBack);

  await page.click(`li[data-subscription="${target.id}"] button.cancel`);
  await settle(page);
  const cancelled = await snapshot(page);
  mustBeClean('cancel', cancelled);

  console.log(JSON.stringify({ target: target.id, list: listed, winback: wonBack, cancel: cancelled, consoleErrors }));
  await browser.close();
} catch (e) {
  console.error(`drive.mjs failed: ${e && e.stack ? e.stack : e}`);
  if (consoleErrors.length) console.error(`browser console errors:\n${consoleErrors.join('\n')}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
