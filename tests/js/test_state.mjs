// The chat's state reducer (static/superorch/chat/state.js), in Node without a server or a DOM.
// Run with: node --test tests/js/   (or make test-js)

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { readFileSync } from 'node:fs';

import { setStrings, t } from '../../static/superorch/chat/i18n.js';
import * as S from '../../static/superorch/chat/state.js';

// The page's English words, as the server embeds them (tests/chat/test_i18n.py keeps this
// file equal to chat.i18n.page_strings("en")).
setStrings(JSON.parse(readFileSync(new URL('./strings_en.json', import.meta.url), 'utf8')));

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Freeze the whole state, so any mutation by the reducer throws. */
function deepFreeze(value) {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Apply frames (or [fn, ...args] actions) one after the other, each on a frozen state. */
function run(state, ...steps) {
  let s = state;
  for (const step of steps) {
    deepFreeze(s);
    s = typeof step === 'function' ? step(s) : S.applyFrame(s, step);
  }
  return s;
}

const messages = (s) => s.log.filter((it) => it.kind === 'message');
const notices = (s) => s.log.filter((it) => it.kind === 'notice');
const keys = (s) => s.log.map((it) => (it.kind === 'message' ? it.id || `pending:${it.clientId}` : `notice:${it.testid}`));
const item = (s, id) => s.log.find((it) => it.kind === 'message' && it.id === id);
const effects = (s, type) => s.effects.filter((e) => e.type === type);

const BILLING = { slug: 'billing', name: 'Billing' };
const user = (id, clientId, text = 'hello') => ({ id, role: 'user', agent: null, text, created: '2026-11-25T10:00:00Z', client_id: clientId });
const reply = (id, text = 'an answer', agent = BILLING) => ({ id, role: 'assistant', agent, text, created: '2026-11-25T10:00:01Z' });

const ready = (extra = {}) => ({
  type: 'session.ready', conversation: 'conv-1', token: 'tok-1',
  agent: { slug: 'orchestrator', name: 'Super Orchestrator' }, greeting: 'Hi!', suggestions: ['A', ' ', 'B'], messages: [], ...extra,
});

function online(extra) {
  return run(S.initialState({ greeting: 'Hello', suggestions: ['x'] }), ready(extra));
}

/** Send `text` with client id `clientId`. */
const send = (clientId, text = 'hello') => (s) => S.sendMessage(s, { id: clientId, text, now: '2026-11-25T09:59:59Z' });

// ---------------------------------------------------------------------------

describe('initialState', () => {
  test('defaults', () => {
    const s = S.initialState();
    assert.equal(s.status, 'connecting');
    assert.equal(s.token, null);
    assert.deepEqual(s.agent, { slug: 'orchestrator', name: 'Super Orchestrator' });
    assert.deepEqual(s.log, []);
    assert.equal(s.maxMessageChars, 4000);
    assert.deepEqual(s.effects, []);
  });

  test('an outbox from before a reload is shown as pending messages', () => {
    const s = S.initialState({ token: 't', outbox: [{ id: 'c1', text: 'one' }, { id: 2, text: 'bad' }, null, { id: 'c2', text: 'two' }], maxMessageChars: 500 });
    assert.deepEqual(s.outbox, [{ id: 'c1', text: 'one' }, { id: 'c2', text: 'two' }]);
    assert.deepEqual(keys(s), ['pending:c1', 'pending:c2']);
    assert.ok(messages(s).every((m) => m.pending && m.role === 'user'));
    assert.equal(s.maxMessageChars, 500);
    assert.equal(s.token, 't');
  });

  test('suggestions keep non-blank strings only', () => {
    assert.deepEqual(S.initialState({ suggestions: ['a', '', '  ', 3, 'b'] }).suggestions, ['a', 'b']);
  });
});

describe('session.ready', () => {
  test('goes online, keeps the token, greeting, suggestions and agent, asks to flush and to tell the parent', () => {
    const s = online({ agent: BILLING });
    assert.equal(s.status, 'online');
    assert.equal(s.conversation, 'conv-1');
    assert.equal(s.token, 'tok-1');
    assert.equal(s.greeting, 'Hi!');
    assert.deepEqual(s.suggestions, ['A', 'B']);
    assert.deepEqual(s.agent, BILLING);
    assert.deepEqual(effects(s, 'flush'), [{ type: 'flush' }]);
    assert.deepEqual(effects(s, 'ready'), [{ type: 'ready', conversation: 'conv-1' }]);
    assert.deepEqual(effects(s, 'scroll'), [{ type: 'scroll', force: true }]);   // first load
  });

  test('shows the history and sets since to its newest message', () => {
    const s = online({ messages: [user('m1', 'c1'), reply('m2')] });
    assert.deepEqual(keys(s), ['m1', 'm2']);
    assert.equal(s.syncedId, 'm2');
    assert.equal(item(s, 'm2').agent.slug, 'billing');
    assert.equal(S.agentName(s, 'billing'), 'Billing');
  });

  test('with since: merges the newer messages without duplicates', () => {
    let s = online({ messages: [user('m1', 'c1'), reply('m2', 'old text')] });
    assert.deepEqual(S.sessionStart(s, { site: 'demo' }), { type: 'session.start', protocol: 1, site: 'demo', token: 'tok-1', since: 'm2' });
    s = run(s, S.connectionClosed, ready({ messages: [reply('m2', 'final text'), user('m3', 'c3'), reply('m4')] }));
    assert.deepEqual(keys(s), ['m1', 'm2', 'm3', 'm4']);
    assert.equal(item(s, 'm2').text, 'final text');
    assert.equal(s.syncedId, 'm4');
    assert.deepEqual(effects(s, 'scroll'), [{ type: 'scroll', force: false }]);
  });

  test('promotes a pending message the server already stored and drops it from the outbox', () => {
    let s = run(S.initialState({ outbox: [{ id: 'c1', text: 'hello' }, { id: 'c2', text: 'again' }] }), ready({ messages: [user('m1', 'c1')] }));
    assert.deepEqual(keys(s), ['m1', 'pending:c2']);
    assert.deepEqual(s.outbox, [{ id: 'c2', text: 'again' }]);
    assert.equal(s.log[0].key, 'c:c1');   // the same item (and element) as while pending
    assert.equal(s.syncedId, 'm1');
    s = run(s, { type: 'message.ack', id: 'c2', message: user('m2', 'c2', 'again') });
    assert.deepEqual(keys(s), ['m1', 'm2']);
    assert.deepEqual(s.outbox, []);
  });

  test('another conversation (token refused): the log is cleared but pending messages stay', () => {
    let s = run(online({ messages: [user('m1', 'c1'), reply('m2')] }), send('c9', 'still here'));
    s = run(s, ready({ conversation: 'conv-2', token: 'tok-2', messages: [] }));
    assert.equal(s.conversation, 'conv-2');
    assert.equal(s.token, 'tok-2');
    assert.deepEqual(keys(s), ['pending:c9']);
    assert.deepEqual(s.outbox, [{ id: 'c9', text: 'still here' }]);
    assert.equal(s.syncedId, null);
  });

  test('hides an alert without a retry (e.g. "we will reconnect shortly"), keeps one with a retry', () => {
    let s = run(online(), (x) => S.connectionClosed(x, { code: 4429 }));
    assert.match(s.alert.text, /Too many messages/);
    s = run(s, ready());
    assert.equal(s.alert, null);
    s = run(s, send('c1'), { type: 'error', code: 'rate_limited', ref: 'c1', retryable: true, message: 'Slow down' }, ready());
    assert.deepEqual(s.alert.retry, { kind: 'resend', ref: 'c1' });
  });
});

describe('sending and message.ack', () => {
  test('a send is pending, in the outbox, and hides the alert', () => {
    let s = run(online(), (x) => S.raiseAlert(x, 'old'), send('c1', 'hi'));
    assert.deepEqual(s.outbox, [{ id: 'c1', text: 'hi' }]);
    assert.deepEqual(keys(s), ['pending:c1']);
    assert.equal(s.alert, null);
    assert.deepEqual(effects(s, 'scroll'), [{ type: 'scroll', force: true }]);
    assert.deepEqual(S.shownMessages(s), [{ id: null, client_id: 'c1', role: 'user', agent: null, text: 'hi', pending: true, streaming: false }]);
  });

  test('the ack confirms it: server id, not pending, out of the outbox', () => {
    const s = run(online(), send('c1', 'hi'), { type: 'message.ack', id: 'c1', message: user('m1', 'c1', 'hi') });
    assert.deepEqual(keys(s), ['m1']);
    assert.equal(s.log[0].pending, false);
    assert.equal(s.log[0].key, 'c:c1');
    assert.equal(s.log[0].created, '2026-11-25T10:00:00Z');
    assert.deepEqual(s.outbox, []);
    assert.equal(s.syncedId, 'm1');
  });

  test('an ack whose message lacks client_id still matches by the frame id', () => {
    const msg = user('m1', undefined, 'hi');
    delete msg.client_id;
    const s = run(online(), send('c1', 'hi'), { type: 'message.ack', id: 'c1', message: msg });
    assert.deepEqual(keys(s), ['m1']);
    assert.equal(s.log[0].clientId, 'c1');
  });

  test('an ack for a resent message does not duplicate it', () => {
    const ack = { type: 'message.ack', id: 'c1', message: user('m1', 'c1', 'hi') };
    const s = run(online(), send('c1', 'hi'), ack, S.connectionClosed, ready({ messages: [user('m1', 'c1', 'hi')] }), ack);
    assert.deepEqual(keys(s), ['m1']);
    assert.deepEqual(s.outbox, []);
  });

  test('an ack from another tab (unknown client id) shows the message', () => {
    const s = run(online(), { type: 'message.ack', id: 'other', message: user('m5', 'other', 'from the other tab') });
    assert.deepEqual(keys(s), ['m5']);
  });

  test('a confirmed message moves before messages still waiting for their ack', () => {
    const s = run(online(), send('c1', 'first'), send('c2', 'second'), { type: 'message.ack', id: 'c2', message: user('m2', 'c2', 'second') });
    assert.deepEqual(keys(s), ['m2', 'pending:c1']);
    assert.equal(s.syncedId, 'm2');
  });

  test('new messages go before pending ones', () => {
    const s = run(online(), send('c1'), { type: 'message.done', turn: null, message: { ...reply('s1', 'from staff'), role: 'staff', agent: { slug: 'staff', name: 'Ann' } } });
    assert.deepEqual(keys(s), ['s1', 'pending:c1']);
  });

  test('outgoingText trims, refuses blank text and cuts to the limit', () => {
    assert.equal(S.outgoingText('  \n\n  hi there  \n', 4000), '  hi there');
    assert.equal(S.outgoingText('   \n ', 4000), '');
    assert.equal(S.outgoingText(null, 4000), '');
    assert.equal(S.outgoingText('x'.repeat(50), 10), 'x'.repeat(10));
  });

  test('frameBytes counts UTF-8 bytes of the JSON frame', () => {
    assert.equal(S.frameBytes({ a: 'é' }), '{"a":"é"}'.length + 1);
    assert.equal(S.frameBytes({ t: '\u0001' }), '{"t":"\\u0001"}'.length);
  });
});

describe('a turn', () => {
  const started = (extra = {}) => ({ type: 'turn.started', turn: 't1', reply_to: 'c1', ...extra });
  const acked = [send('c1', 'I was charged twice'), { type: 'message.ack', id: 'c1', message: user('m1', 'c1', 'I was charged twice') }];

  test('turn.started: running, typing shown, stop shown, since frozen', () => {
    const s = run(online(), ...acked, started());
    assert.deepEqual(s.running, ['t1']);
    assert.equal(s.turns.t1.replyTo, 'c1');
    assert.equal(s.turns.t1.anchor, 'c:c1');   // reply_to is the client id
    assert.deepEqual(S.indicators(s), { running: true, typing: true, label: 'Super Orchestrator is typing…', tool: false });
  });

  test('agent.changed: a notice placed with its turn, the header agent changes', () => {
    let s = run(online(), ...acked, started(), send('c2', 'meanwhile'), { type: 'message.ack', id: 'c2', message: user('m2', 'c2', 'meanwhile') });
    s = run(s, { type: 'agent.changed', turn: 't1', from: { slug: 'orchestrator', name: 'Super Orchestrator' }, to: BILLING, reason: 'route' });
    assert.deepEqual(keys(s), ['m1', 'notice:agent-notice', 'm2']);
    const notice = notices(s)[0];
    assert.equal(notice.text, 'Billing has joined');
    assert.equal(notice.reason, 'route');
    assert.equal(notice.agent, 'billing');
    assert.deepEqual(s.agent, BILLING);
    assert.equal(s.turns.t1.anchor, notice.key);
    assert.equal(S.indicators(s).label, 'Billing is typing…');
  });

  test('agent.changed with reason fallback says "to help"; the same agent again adds nothing', () => {
    let s = run(online(), ...acked, started(), { type: 'agent.changed', turn: 't1', to: { slug: 'general', name: 'General' }, reason: 'fallback' });
    assert.equal(notices(s)[0].text, 'General has joined to help');
    s = run(s, { type: 'agent.changed', turn: 't1', to: { slug: 'general', name: 'General' }, reason: 'route' });
    assert.equal(notices(s).length, 1);
    s = run(s, { type: 'agent.changed', turn: 't1', to: null });
    assert.equal(notices(s).length, 1);
  });

  test('tool.started / workflow.progress / tool.finished drive the typing label', () => {
    let s = run(online(), ...acked, started(), { type: 'tool.started', turn: 't1', tool: 'search_knowledge', call: 'k1', label: 'Searching the knowledge base' });
    assert.deepEqual(S.indicators(s), { running: true, typing: true, label: 'Searching the knowledge base', tool: true });
    s = run(s, { type: 'tool.started', turn: 't1', tool: 'execute_workflow', call: 'w1', label: 'Running a workflow' });
    assert.equal(S.indicators(s).label, 'Running a workflow');
    s = run(s, { type: 'workflow.progress', turn: 't1', workflow: { id: 'r', slug: 'refund_request', name: 'Refund request' }, status: 'finished', done: 2, total: 3 });
    assert.equal(S.indicators(s).label, 'Refund request: 2 of 3 steps done…');
    s = run(s, { type: 'workflow.progress', turn: 't1', workflow: { name: 'Refund request' }, status: 'retrying', done: 1, total: 3 });
    assert.equal(S.indicators(s).label, 'Refund request: retrying a step (1 of 3 done)…');
    s = run(s, { type: 'tool.finished', turn: 't1', call: 'w1', ok: true });
    assert.equal(S.indicators(s).label, 'Searching the knowledge base');
    s = run(s, { type: 'tool.finished', turn: 't1', call: 'k1', ok: true });
    assert.deepEqual(S.indicators(s), { running: true, typing: true, label: 'Super Orchestrator is typing…', tool: false });
  });

  test('a tool without a label or call id', () => {
    const s = run(online(), ...acked, started(), { type: 'tool.started', turn: 't1', tool: 'x' });
    assert.equal(s.tools.length, 1);
    assert.ok(s.tools[0].call);
    assert.equal(S.indicators(s).label, 'Working on it…');
  });

  test('message.delta streams a reply after its turn; the typing line gives way', () => {
    let s = run(online(), ...acked, started(), { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'Hel' });
    assert.deepEqual(keys(s), ['m1', 'r1']);
    assert.equal(item(s, 'r1').streaming, true);
    assert.equal(item(s, 'r1').role, 'assistant');
    assert.equal(item(s, 'r1').agent.slug, 'billing');
    assert.equal(S.indicators(s).typing, false);
    s = run(s, { type: 'message.delta', turn: 't1', message: 'r1', text: 'lo' });
    assert.equal(item(s, 'r1').text, 'Hello');
    assert.deepEqual(s.turns.t1.streaming, ['r1']);
    assert.equal(s.syncedId, 'm1');   // not past a reply being written
  });

  test('message.done for a streamed message replaces its deltas', () => {
    const s = run(online(), ...acked, started(),
      { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'partial **bo' },
      { type: 'message.done', turn: 't1', message: reply('r1', 'the **whole** reply') });
    assert.deepEqual(keys(s), ['m1', 'r1']);
    assert.equal(item(s, 'r1').text, 'the **whole** reply');
    assert.equal(item(s, 'r1').streaming, false);
    assert.deepEqual(s.turns.t1.streaming, []);
    assert.deepEqual(effects(s, 'notify'), [{ type: 'notify', message: { id: 'r1', role: 'assistant', agent: BILLING, text: 'the **whole** reply' } }]);
  });

  test('a delta after the message is complete changes nothing', () => {
    const s = run(online({ messages: [reply('r1', 'done already')] }), { type: 'message.delta', turn: 't1', message: 'r1', text: ' more' });
    assert.equal(item(s, 'r1').text, 'done already');
    assert.equal(item(s, 'r1').streaming, false);
  });

  test('message.done without deltas goes with its turn, not after later messages', () => {
    const s = run(online(), ...acked, started(), send('c2', 'meanwhile'), { type: 'message.ack', id: 'c2', message: user('m2', 'c2', 'meanwhile') },
      { type: 'message.done', turn: 't1', message: reply('r1') });
    assert.deepEqual(keys(s), ['m1', 'r1', 'm2']);
  });

  test('a second message of a turn follows the first', () => {
    const s = run(online(), ...acked, started(),
      { type: 'message.done', turn: 't1', message: reply('r1') }, { type: 'message.done', turn: 't1', message: reply('r2') });
    assert.deepEqual(keys(s), ['m1', 'r1', 'r2']);
  });

  test('message.done twice is idempotent', () => {
    const done = { type: 'message.done', turn: 't1', message: reply('r1') };
    const s = run(online(), ...acked, started(), done, done);
    assert.deepEqual(keys(s), ['m1', 'r1']);
  });

  test('turn.done ok clears the typing state and advances since', () => {
    let s = run(online(), ...acked, started(), { type: 'tool.started', turn: 't1', tool: 'search_knowledge', call: 'k1', label: 'Searching' },
      { type: 'message.delta', turn: 't1', message: 'r1', text: 'Hi' }, { type: 'message.done', turn: 't1', message: reply('r1', 'Hi') });
    assert.equal(s.syncedId, 'm1');
    s = run(s, { type: 'turn.done', turn: 't1', status: 'ok' });
    assert.deepEqual(s.running, []);
    assert.deepEqual(s.tools, []);
    assert.equal(s.turns.t1, undefined);
    assert.deepEqual(S.indicators(s), { running: false, typing: false, label: 'Super Orchestrator is typing…', tool: false });
    assert.equal(s.syncedId, 'r1');
    assert.deepEqual(notices(s), []);
  });

  test('turn.done cancelled keeps the partial reply and says Stopped', () => {
    const s = run(online(), ...acked, started(), { type: 'message.delta', turn: 't1', message: 'r1', text: 'Half a' },
      { type: 'turn.done', turn: 't1', status: 'cancelled' });
    assert.deepEqual(keys(s), ['m1', 'r1', 'notice:stopped']);
    assert.equal(item(s, 'r1').streaming, false);
    assert.equal(item(s, 'r1').text, 'Half a');
    assert.equal(notices(s)[0].text, 'Stopped');
  });

  test('turn.done error adds a Retry with the user message text', () => {
    const s = run(online(), ...acked, started(), { type: 'error', code: 'internal', ref: 't1', retryable: true, message: 'Oops' },
      { type: 'turn.done', turn: 't1', status: 'error' });
    assert.deepEqual(keys(s), ['m1', 'notice:turn-error']);
    assert.equal(notices(s)[0].retryText, 'I was charged twice');
    assert.equal(s.alert.text, 'Oops');
    assert.equal(s.alert.retry, null);   // the turn's own Retry, not the alert's
    const removed = S.removeItem(s, notices(s)[0].key);
    assert.deepEqual(keys(removed), ['m1']);
  });

  test('model_unavailable: the message is kept and answered later; an answer hides the alert', () => {
    let s = run(online(), ...acked, started(), { type: 'error', code: 'model_unavailable', ref: 't1', retryable: true },
      { type: 'turn.done', turn: 't1', status: 'error' });
    assert.deepEqual(keys(s), ['m1', 'notice:queued']);
    assert.match(notices(s)[0].text, /^Saved: /);
    assert.equal(s.alert.text, t(S.ERROR_FALLBACK.model_unavailable));
    assert.equal(s.alert.code, 'model_unavailable');
    s = run(s, { type: 'turn.started', turn: 't2', reply_to: 'c1' }, { type: 'message.done', turn: 't2', message: reply('r1') }, { type: 'turn.done', turn: 't2', status: 'ok' });
    assert.equal(s.alert, null);
  });

  test('turn.done for an unknown turn only stops it running', () => {
    const s = run(online(), { type: 'turn.done', turn: 'nope', status: 'ok' });
    assert.deepEqual(s.running, []);
    assert.deepEqual(s.log, []);
  });
});

describe('messages outside a turn and unknown frames', () => {
  test('a staff reply (message.done, turn null) is shown and notified', () => {
    const staff = { id: 's1', role: 'staff', agent: { slug: 'staff', name: 'Ann' }, text: 'Hi, Ann here', created: '2026-11-25T10:05:00Z' };
    const s = run(online(), { type: 'message.done', turn: null, message: staff });
    assert.deepEqual(keys(s), ['s1']);
    assert.equal(effects(s, 'notify').length, 1);
    assert.deepEqual(s.running, []);
  });

  test('an unknown frame carrying a message shows it; a staff one is notified once', () => {
    const staff = { id: 's2', role: 'staff', agent: { slug: 'staff', name: 'Bo' }, text: 'hello' };
    let s = run(online(), { type: 'staff.message', message: staff });
    assert.deepEqual(keys(s), ['s2']);
    assert.equal(effects(s, 'notify').length, 1);
    s = run(s, { type: 'staff.message', message: staff });
    assert.deepEqual(keys(s), ['s2']);
    assert.equal(effects(s, 'notify').length, 0);
  });

  test('unknown frames without a message, pong and junk change nothing visible', () => {
    const base = online();
    for (const frame of [{ type: 'something.new' }, { type: 'pong' }, null, 'x', { no: 'type' }, { type: 'message.done' }, { type: 'message.delta' }]) {
      const s = run(base, frame);
      assert.deepEqual(s.log, base.log);
      assert.equal(s.status, base.status);
      assert.deepEqual(s.effects, []);
    }
  });

  test('an unknown role is shown as system text', () => {
    const s = run(online(), { type: 'message.done', turn: null, message: { id: 'x1', role: 'robot', text: 'beep' } });
    assert.equal(item(s, 'x1').role, 'system');
  });
});

describe('feedback', () => {
  test('feedback.ack records the value that was sent', () => {
    let s = run(online({ messages: [reply('r1')] }), (x) => S.feedbackSent(x, 'r1', 'down'));
    assert.deepEqual(s.feedbackPending, { r1: 'down' });
    s = run(s, { type: 'feedback.ack', message: 'r1' });
    assert.deepEqual(s.feedback, { r1: 'down' });
    assert.deepEqual(s.feedbackPending, {});
  });

  test('feedback.ack with a value and no pending send', () => {
    const s = run(online(), { type: 'feedback.ack', message: 'r9', value: 'up' });
    assert.deepEqual(s.feedback, { r9: 'up' });
    assert.deepEqual(run(online(), { type: 'feedback.ack', message: 'r9' }).feedback, {});
  });

  test('an error for a feedback frame forgets the pending value', () => {
    const s = run(online(), (x) => S.feedbackSent(x, 'r1', 'up'), { type: 'error', code: 'not_found', ref: 'r1', message: 'No such message' });
    assert.deepEqual(s.feedbackPending, {});
    assert.equal(s.alert.text, 'No such message');
  });

  test('keeps the newest 300 choices', () => {
    const feedback = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`id-${i}`, 'up']));
    const s = run(S.initialState({ feedback }), { type: 'feedback.ack', message: 'newest', value: 'down' });
    assert.equal(Object.keys(s.feedback).length, 300);
    assert.equal(s.feedback['id-0'], undefined);
    assert.equal(s.feedback.newest, 'down');
  });
});

describe('error', () => {
  test('with the ref of a pending message, not retryable: marks it failed, out of the outbox, text back', () => {
    const s = run(online(), send('c1', 'x'.repeat(10)), { type: 'error', code: 'too_large', ref: 'c1', retryable: false });
    const failed = s.log[0];
    assert.equal(failed.failed, true);
    assert.equal(failed.pending, false);
    assert.deepEqual(s.outbox, []);
    assert.deepEqual(effects(s, 'restore-input'), [{ type: 'restore-input', text: 'x'.repeat(10) }]);
    assert.equal(s.alert.text, 'That message is too long.');
    assert.deepEqual(S.shownMessages(s), []);   // a failed send is not reported as a message
  });

  test('with the ref of a pending message, retryable: stays pending, the alert can resend it', () => {
    const s = run(online(), send('c1'), { type: 'error', code: 'rate_limited', ref: 'c1', retryable: true });
    assert.equal(s.log[0].pending, true);
    assert.equal(s.log[0].failed, false);
    assert.deepEqual(s.outbox, [{ id: 'c1', text: 'hello' }]);
    assert.deepEqual(s.alert, { text: t(S.ERROR_FALLBACK.rate_limited), code: 'rate_limited', retry: { kind: 'resend', ref: 'c1' } });
  });

  test('retryable without a ref: the alert retries the outbox', () => {
    const s = run(online(), { type: 'error', code: 'internal', retryable: true });
    assert.deepEqual(s.alert.retry, { kind: 'flush' });
    assert.equal(s.alert.text, t(S.ERROR_FALLBACK.internal));
  });

  test('unknown code without words', () => {
    const s = run(online(), { type: 'error', code: 'bad_frame' });
    assert.deepEqual(s.alert, { text: 'Something went wrong. Please try again.', code: 'bad_frame', retry: null });
  });

  test('identity_invalid then close 4401: the server words are shown, status closed', () => {
    const s = run(online(), { type: 'error', code: 'identity_invalid', message: 'We could not verify the visitor.' },
      (x) => S.connectionClosed(x, { code: 4401, reason: '' }));
    assert.equal(s.status, 'closed');
    assert.equal(s.alert.text, 'We could not verify the visitor.');
  });
});

describe('the connection', () => {
  test('connecting vs reconnecting', () => {
    assert.equal(S.connecting(S.initialState(), {}).status, 'connecting');
    assert.equal(S.connecting(S.initialState(), { retry: true }).status, 'reconnecting');
    assert.equal(S.connecting(online({ messages: [reply('r1')] }), {}).status, 'reconnecting');
  });

  test('a close stops what was running but keeps the text streamed so far', () => {
    const s = run(online(), { type: 'turn.started', turn: 't1' }, { type: 'tool.started', turn: 't1', call: 'k', label: 'L' },
      { type: 'message.delta', turn: 't1', message: 'r1', text: 'part' }, (x) => S.connectionClosed(x, { code: 1006 }));
    assert.deepEqual(s.running, []);
    assert.deepEqual(s.tools, []);
    assert.deepEqual(s.turns.t1.streaming, []);
    assert.equal(item(s, 'r1').text, 'part');
    assert.equal(s.alert, null);
    assert.equal(S.indicators(s).running, false);
  });

  test('fatal closes say why', () => {
    for (const code of [4400, 4401, 4403]) {
      const s = S.connectionClosed(online(), { code, reason: '' });
      assert.equal(s.status, 'closed');
      assert.equal(s.alert.text, t(S.CLOSE_REASONS[code]));
    }
    assert.equal(S.connectionClosed(online(), { code: 4403, reason: 'Site disabled' }).alert.text, 'Site disabled');
  });

  test('session.start carries user and context, since only with a token', () => {
    const s = S.initialState();
    assert.deepEqual(S.sessionStart(s, { site: 'shop', user: { id: '7' }, context: { page: '/x' } }),
      { type: 'session.start', protocol: 1, site: 'shop', user: { id: '7' }, context: { page: '/x' } });
  });
});

describe('new conversation', () => {
  test('startOver forgets the token, the outbox, the log and the agent', () => {
    const s = run(online({ agent: BILLING, messages: [reply('r1')] }), send('c1'), (x) => S.raiseAlert(x, 'x'), S.startOver);
    assert.equal(s.token, null);
    assert.equal(s.conversation, null);
    assert.deepEqual(s.log, []);
    assert.deepEqual(s.outbox, []);
    assert.deepEqual(s.agent, S.DEFAULT_AGENT);
    assert.equal(s.alert, null);
    assert.equal(s.syncedId, null);
    assert.deepEqual(S.sessionStart(s, { site: 'demo' }), { type: 'session.start', protocol: 1, site: 'demo' });
  });

  test('clearConversation keepPending keeps waiting messages', () => {
    const s = run(online({ messages: [reply('r1')] }), send('c1'), (x) => S.clearConversation(x, { keepPending: true }));
    assert.deepEqual(keys(s), ['pending:c1']);
    assert.deepEqual(s.outbox, [{ id: 'c1', text: 'hello' }]);
  });

  test('sessionRestarted stops indicators and hides the alert', () => {
    const s = run(online(), { type: 'turn.started', turn: 't1' }, (x) => S.raiseAlert(x, 'x'), S.sessionRestarted);
    assert.deepEqual(s.running, []);
    assert.equal(s.alert, null);
  });
});

describe('agent names', () => {
  test('unknown slugs are made readable', () => {
    const s = S.initialState();
    assert.equal(S.agentName(s, 'it_support'), 'It support');
    assert.equal(S.agentName(s, ''), 'Super Orchestrator');
    assert.equal(S.agentName(s, { slug: 'x', name: 'Xavier' }), 'Xavier');
    assert.equal(S.agentName(s, 'constructor'), 'Constructor');   // not Object.prototype's
  });
});

describe('recovery (seq, running turn, progress, one reply)', () => {
  const acked = [send('c1', 'I was charged twice'), { type: 'message.ack', id: 'c1', message: user('m1', 'c1', 'I was charged twice') }];
  const started = { type: 'turn.started', turn: 't1', reply_to: 'c1', seq: 1 };

  test('consecutive seq: no resync; a gap asks for one, once', () => {
    let s = run(online(), ...acked, started, { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'Hel', seq: 2 });
    assert.deepEqual(effects(s, 'resync'), []);
    assert.equal(s.turns.t1.lastSeq, 2);
    s = run(s, { type: 'message.delta', turn: 't1', message: 'r1', text: 'lo', seq: 5 });
    assert.equal(effects(s, 'resync').length, 1);
    assert.equal(item(s, 'r1').text, 'Hello');
  });

  test('a duplicate frame is ignored', () => {
    const delta = { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'Hel', seq: 2 };
    const s = run(online(), ...acked, started, delta, delta);
    assert.equal(item(s, 'r1').text, 'Hel');
  });

  test('a first frame of an unknown turn past 1 is a gap (turn.started was lost)', () => {
    const s = run(online(), ...acked, { type: 'message.delta', turn: 't9', message: 'r9', agent: 'billing', text: 'x', seq: 4 });
    assert.equal(effects(s, 'resync').length, 1);
  });

  test('session.ready naming a running turn: it stays running and is followed from where it joins', () => {
    const s = run(online({ messages: [user('m1', 'c1')] }),
      ready({ messages: [], turn: { id: 't1', reply_to: 'c1' } }),
      { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'later part', seq: 17 });
    assert.deepEqual(effects(s, 'resync'), []);
    assert.deepEqual(s.running, ['t1']);
    assert.equal(S.indicators(s).running, true);
  });

  test('session.ready without the turn we thought running: it has ended, its reply is in messages', () => {
    let s = run(online(), ...acked, started, { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'Hel', seq: 2 });
    s = run(s, (x) => S.connectionClosed(x, { code: 1006 }), ready({ messages: [reply('r1', 'Hello, the whole reply')], turn: null }));
    assert.deepEqual(s.running, []);
    assert.deepEqual(s.turns, {});
    assert.equal(item(s, 'r1').text, 'Hello, the whole reply');
    assert.equal(item(s, 'r1').streaming, false);
    assert.equal(S.indicators(s).running, false);
  });

  test('a reply its server never stored (it died mid-reply) is dropped on session.ready', () => {
    let s = run(online(), ...acked, started, { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'Hel', seq: 2 });
    s = run(s, (x) => S.connectionClosed(x, { code: 1006 }), ready({ messages: [], turn: null }));
    assert.equal(item(s, 'r1'), undefined);
    assert.deepEqual(messages(s).map((m) => m.id), ['m1']);
  });

  test('turn.progress shows a status line until the next output', () => {
    let s = run(online(), ...acked, started, { type: 'turn.progress', turn: 't1', message: 'Still working on it.', elapsed: 5, seq: 2 });
    assert.deepEqual(S.indicators(s), { running: true, typing: true, label: 'Still working on it.', tool: false });
    s = run(s, { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'Here', seq: 3 });
    assert.equal(S.indicators(s).typing, false);
    assert.equal(s.turns.t1.progress, '');
  });

  test('a retry reply under the partial reply\'s id replaces its bubble', () => {
    let s = run(online(), ...acked, started,
      { type: 'message.delta', turn: 't1', message: 'r1', agent: 'billing', text: 'one two', seq: 2 },
      { type: 'message.done', turn: 't1', message: reply('r1', 'one two'), seq: 3 },
      { type: 'error', code: 'model_unavailable', message: 'Saved.', retryable: true, ref: 't1', seq: 4 },
      { type: 'turn.done', turn: 't1', status: 'error', seq: 5 });
    s = run(s, { type: 'turn.started', turn: 't2', reply_to: 'c1', seq: 1 },
      { type: 'message.delta', turn: 't2', message: 'r1', agent: 'billing', text: 'The whole', seq: 2 });
    assert.equal(item(s, 'r1').text, 'The whole');
    assert.equal(item(s, 'r1').streaming, true);
    s = run(s, { type: 'message.done', turn: 't2', message: reply('r1', 'The whole answer'), seq: 3 });
    assert.equal(messages(s).filter((m) => m.role === 'assistant').length, 1);
    assert.equal(item(s, 'r1').text, 'The whole answer');
  });

  test('an interrupted turn ends with a Retry that goes once the server answers again', () => {
    let s = run(online(), ...acked, started,
      { type: 'error', code: 'internal', message: 'Sorry, we were interrupted.', retryable: true, ref: 't1' },
      { type: 'turn.done', turn: 't1', status: 'error' });
    assert.deepEqual(s.running, []);
    assert.equal(notices(s).filter((n) => n.testid === 'turn-error').length, 1);
    s = run(s, { type: 'turn.started', turn: 't2', reply_to: 'c1', seq: 1 });
    assert.equal(notices(s).filter((n) => n.testid === 'turn-error').length, 0);
    assert.deepEqual(s.running, ['t2']);
  });
});

// ---------------------------------------------------------------------------
// People in the loop: conversation.status and session.ready's status
// ---------------------------------------------------------------------------

const statusFrame = (extra = {}) => ({
  type: 'conversation.status', status: 'waiting', staff: null, eta_seconds: null, open_now: true,
  opens_at: null, message: 'We have asked for a person.', csat: null, email_saved: false, ...extra,
});

describe('people in the loop', () => {
  test('the agents answer at first: the button shows, no banner', () => {
    const s = online();
    assert.equal(s.people.status, 'bot');
    assert.deepEqual(S.peopleView(s), { askButton: true, banner: '', askEmail: false, askCsat: false, rated: null });
    assert.equal(S.peopleView(S.initialState()).askButton, false);   // not before the session
  });

  test('session.ready brings the status of a conversation with a person', () => {
    const s = online({ status: { status: 'human', staff: { name: 'Sam' }, eta_seconds: null, open_now: true, message: 'Sam has joined the conversation.' } });
    assert.deepEqual(s.people.staff, { name: 'Sam' });
    const view = S.peopleView(s);
    assert.equal(view.askButton, false);
    assert.equal(view.banner, 'Sam has joined the conversation.');
  });

  test('waiting shows the words and the wait; out of hours it asks for an email', () => {
    let s = run(online(), statusFrame({ eta_seconds: 120 }));
    assert.equal(s.people.eta, 120);
    assert.equal(S.peopleView(s).askButton, false);
    assert.equal(S.peopleView(s).askEmail, false);
    s = run(s, statusFrame({ open_now: false, opens_at: '2026-12-07T09:00:00+01:00', message: 'Back on Monday.' }));
    assert.equal(S.peopleView(s).askEmail, true);
    assert.equal(s.people.opensAt, '2026-12-07T09:00:00+01:00');
    s = run(s, statusFrame({ open_now: false, email_saved: true }));
    assert.equal(S.peopleView(s).askEmail, false);
  });

  test('resolved asks for a rating once; the rating hides it', () => {
    let s = run(online(), statusFrame({ status: 'resolved', message: 'Resolved.' }));
    assert.equal(S.peopleView(s).askCsat, true);
    assert.equal(S.peopleView(s).askButton, true);   // a person can be asked for again
    s = run(s, statusFrame({ status: 'resolved', csat: 4 }));
    assert.equal(S.peopleView(s).askCsat, false);
    assert.equal(S.peopleView(s).rated, 4);
  });

  test('odd values are read safely', () => {
    const s = run(online(), statusFrame({ status: 'sideways', staff: 'Sam', eta_seconds: -3, csat: 9, open_now: 'no' }));
    assert.deepEqual(s.people, { status: 'bot', staff: null, eta: null, openNow: true, opensAt: null, message: 'We have asked for a person.', csat: null, emailSaved: false });
  });

  test('while a person owns it, a gap in an agent turn\'s frames is expected: no resync', () => {
    const started = { type: 'turn.started', turn: 't-1', reply_to: 'c-1', seq: 1 };
    const delta = { type: 'message.delta', turn: 't-1', message: 'm-1', agent: 'billing', text: 'Hel', seq: 2 };
    const done = { type: 'turn.done', turn: 't-1', status: 'cancelled', seq: 5 };
    let s = run(online(), started, delta, statusFrame({ status: 'human', staff: { name: 'Sam' } }), done);
    assert.equal(effects(s, 'resync').length, 0);
    assert.equal(S.indicators(s).running, false);
    // With the agents answering, the same gap asks for a resync.
    s = run(online(), started, delta, done);
    assert.equal(effects(s, 'resync').length, 1);
  });

  test('a new conversation forgets the status', () => {
    const s = run(online(), statusFrame({ status: 'human' }), S.startOver);
    assert.equal(s.people.status, 'bot');
  });
});

describe('approvals', () => {
  const request = (by = 'user', extra = {}) => ({
    type: 'approval.request', turn: 't-1', approval: 'a-1', agent: 'billing', action: 'request_refund',
    summary: 'Refund EUR 49.00 for invoice ACME-2024-000123', by, expires: '2026-12-04T19:00:00+00:00', seq: 3, ...extra,
  });
  const cards = (s) => s.log.filter((it) => it.kind === 'approval');
  const started = { type: 'turn.started', turn: 't-1', reply_to: 'c-1', seq: 1 };
  const paused = { type: 'turn.done', turn: 't-1', status: 'paused', seq: 4 };

  test('a request is a card after its turn, once, and the paused turn stops the typing line', () => {
    const s = run(online(), started, request(), paused, { ...request(), seq: undefined });
    assert.equal(cards(s).length, 1);
    assert.deepEqual(
      { ...cards(s)[0], key: undefined },
      { kind: 'approval', key: undefined, id: 'a-1', summary: 'Refund EUR 49.00 for invoice ACME-2024-000123', action: 'request_refund', agent: 'billing', by: 'user', expires: '2026-12-04T19:00:00+00:00', outcome: null, sending: false, replyTo: 'c-1' },
    );
    assert.equal(S.indicators(s).running, false);
    assert.equal(notices(s).length, 0);   // paused is neither an error nor "stopped"
  });

  test('answering marks the card busy; approval.resolved shows the outcome', () => {
    let s = run(online(), started, request(), paused, (x) => S.approvalSent(x, 'a-1'));
    assert.equal(cards(s)[0].sending, true);
    s = run(s, { type: 'approval.resolved', approval: 'a-1', outcome: 'declined' });
    assert.equal(cards(s)[0].outcome, 'declined');
    assert.equal(cards(s)[0].sending, false);
  });

  test('the resumed turn answers below the card', () => {
    const ack = { type: 'message.ack', id: 'c-1', message: user('u-1', 'c-1', 'refund please') };
    const resumed = { type: 'turn.started', turn: 't-2', reply_to: 'c-1', seq: 1 };
    const done = { type: 'message.done', turn: 't-2', message: reply('m-2', 'Done.'), seq: 2 };
    const s = run(online(), ack, started, request(), paused, { type: 'approval.resolved', approval: 'a-1', outcome: 'approved' }, resumed, done);
    assert.deepEqual(s.log.map((it) => it.kind), ['message', 'approval', 'message']);
  });

  test('a refused answer frees the card; odd outcomes and unknown ids change nothing', () => {
    let s = run(online(), started, request('staff'), paused, (x) => S.approvalSent(x, 'a-1'));
    s = run(s, { type: 'error', code: 'forbidden', message: 'Our support team decides on this one.', retryable: false, ref: 'a-1' });
    assert.equal(cards(s)[0].sending, false);
    assert.equal(cards(s)[0].by, 'staff');
    s = run(s, { type: 'approval.resolved', approval: 'a-1', outcome: 'maybe' }, { type: 'approval.resolved', approval: 'zz', outcome: 'approved' });
    assert.equal(cards(s)[0].outcome, null);
  });
});

describe('the page\'s words (i18n.js)', () => {
  test('a key is looked up and its placeholders filled', () => {
    assert.equal(t('typing', { name: 'Billing' }), 'Billing is typing…');
    assert.equal(t('workflow_steps', { name: 'Refund', done: 1, total: 3 }), 'Refund: 1 of 3 steps done…');
  });
  test('session.start carries the page\'s locale when it has one', () => {
    assert.equal(S.sessionStart(S.initialState({}), { site: 'demo', locale: 'de' }).locale, 'de');
    assert.equal('locale' in S.sessionStart(S.initialState({}), { site: 'demo' }), false);
  });
  test('another language: the state speaks it', () => {
    setStrings({ stopped: 'Angehalten', typing: '{name} schreibt…' });
    try {
      assert.equal(S.indicators({ ...S.initialState({}), running: ['t1'], turns: { t1: { streaming: [] } } }).label, 'Orchestrator schreibt…'.replace('Orchestrator', S.DEFAULT_AGENT.name));
      assert.equal(t('stopped'), 'Angehalten');
      assert.equal(t('missing_key'), 'missing_key');
      assert.equal(t('typing', {}), '{name} schreibt…');
    } finally {
      setStrings(JSON.parse(readFileSync(new URL('./strings_en.json', import.meta.url), 'utf8')));
    }
  });
});
