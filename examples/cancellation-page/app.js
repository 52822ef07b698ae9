// The cancellation page of seed 002: list the reader's subscriptions, then accept the winback offer
// or cancel at period end. Plain fetch, no build step. Configured by its own query string:
//   ?api=<CRM base URL>&token=<the reader's Piano token>&offer=<winback price id>
'use strict';

const query = new URLSearchParams(window.location.search);
const api = (query.get('api') || 'http://127.0.0.1:8787').replace(/\/+$/, '');
const token = query.get('token') || '';
const offer = query.get('offer') || '';

const $ = (id) => document.getElementById(id);
$('config').textContent = `CRM: ${api} · offer: ${offer || '(none)'}`;

function withToken(path) {
  return `${api}${path}?token=${encodeURIComponent(token)}`;
}

// One call to the CRM: the parsed JSON body, or an Error carrying `body.error` (or the network
// failure, which is also what a browser reports when CORS blocks the answer).
async function call(method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(withToken(path), init);
  } catch (e) {
    throw new Error(`Network error: ${e.message}`);
  }
  let json = null;
  try {
    json = await response.json();
  } catch (_) {
    // not JSON
  }
  if (!response.ok || (json && json.error)) {
    throw new Error((json && json.error) || `HTTP ${response.status}`);
  }
  return json;
}

function priceOf(subscription) {
  const item = subscription.items && subscription.items.data && subscription.items.data[0];
  const price = item && item.price;
  if (!price) return { id: '?', text: '?' };
  const amount = typeof price.unit_amount === 'number' ? (price.unit_amount / 100).toFixed(2) : '?';
  const currency = (price.currency || '').toUpperCase();
  const interval = price.recurring && price.recurring.interval ? `/${price.recurring.interval}` : '';
  return { id: price.id, text: `${amount} ${currency}${interval}`.trim() };
}

function render(subscriptions) {
  const list = $('subscriptions');
  list.replaceChildren();
  for (const s of subscriptions) {
    const price = priceOf(s);
    const li = document.createElement('li');
    li.dataset.subscription = s.id;
    li.dataset.status = s.status;
    li.dataset.price = price.id;
    li.dataset.cancelAtPeriodEnd = String(Boolean(s.cancel_at_period_end));
    const line = document.createElement('div');
    line.textContent = `${s.id} · ${s.status} · ${price.text} (${price.id}) · cancel at period end: ${s.cancel_at_period_end ? 'yes' : 'no'}`;
    li.append(line);
    if (s.status !== 'canceled' && !s.cancel_at_period_end) {
      const accept = document.createElement('button');
      accept.type = 'button';
      accept.className = 'winback';
      accept.textContent = 'Accept offer';
      accept.disabled = !offer;
      accept.addEventListener('click', () => run(() => winback(s.id)));
      const cancel = document.createElement('button');
      cancel.type = 'button';
      cancel.className = 'cancel';
      cancel.textContent = 'Cancel';
      cancel.addEventListener('click', () => run(() => cancelSubscription(s.id)));
      li.append(accept, cancel);
    }
    list.append(li);
  }
}

async function list() {
  const body = await call('GET', '/api/subscriptions');
  render(body.subscriptions || []);
  return body.subscriptions || [];
}

async function winback(subscriptionId) {
  const body = await call('POST', '/api/subscriptions/winback', { subscriptionId, newPriceId: offer });
  $('result').textContent = body.message || (body.data && body.data.message) || 'Offer accepted.';
  await list();
}

async function cancelSubscription(id) {
  const body = await call('DELETE', `/api/subscriptions/${encodeURIComponent(id)}`);
  const data = body.data || {};
  $('result').textContent = `Subscription ${data.id} cancelled: cancel_at_period_end = ${data.cancel_at_period_end}`;
  await list();
}

// Runs one user action: clears the previous outcome, marks the page busy, shows any error.
async function run(action) {
  document.body.dataset.busy = 'true';
  $('result').textContent = '';
  $('error').textContent = '';
  try {
    await action();
  } catch (e) {
    $('error').textContent = e.message;
  } finally {
    document.body.dataset.busy = 'false';
  }
}

$('show').addEventListener('click', () => run(list));
