// Attachments in the chat's state (docs/attachments.md): a message's `attachment` field,
// the upload's own bubble from start to the server's answer or refusal.
// Run with: node --test tests/js/

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { readFileSync } from 'node:fs';

import { setStrings } from '../../static/superorch/chat/i18n.js';
import * as S from '../../static/superorch/chat/state.js';

setStrings(JSON.parse(readFileSync(new globalThis.URL('./strings_en.json', import.meta.url), 'utf8')));

function deepFreeze(value) {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function run(state, ...steps) {
  let s = state;
  for (const step of steps) {
    deepFreeze(s);
    s = typeof step === 'function' ? step(s) : S.applyFrame(s, step);
  }
  return s;
}

const URL = '/api/conversations/attachments/a1/?key=k';
const file = (extra = {}) => ({
  id: 'a1', name: 'shot.png', kind: 'png', content_type: 'image/png', size: 2048, width: 40, height: 30, url: URL, ...extra,
});
const withFile = (id, clientId, attachment = file(), text = '') => ({
  id, role: 'user', agent: null, text, created: '2026-12-04T10:00:00Z', client_id: clientId, attachment,
});
const ready = (messages = []) => ({
  type: 'session.ready', conversation: 'conv-1', token: 'tok-1',
  agent: { slug: 'orchestrator', name: 'Super Orchestrator' }, greeting: 'Hi!', suggestions: [], messages,
});
const online = (messages) => run(S.initialState({}), ready(messages));
const messages = (s) => s.log.filter((it) => it.kind === 'message');
const started = (id = 'up-1') => (s) => S.uploadStarted(s, { id, name: 'shot.png', size: 2048, now: '2026-12-04T09:59:59Z' });

describe('attachments', () => {
  test('a message with a file keeps it, cleaned', () => {
    const s = online([withFile('m1', 'c1')]);
    const [m] = messages(s);
    assert.deepEqual(m.attachment, {
      id: 'a1', name: 'shot.png', kind: 'png', size: 2048, width: 40, height: 30, url: URL, image: true,
      uploading: false, progress: 1,
    });
    assert.equal(S.shownMessages(s)[0].attachment.url, URL);
  });

  test('a message without one has none', () => {
    const s = online([{ id: 'm1', role: 'assistant', agent: null, text: 'hi', created: '2026-12-04T10:00:00Z' }]);
    assert.equal(messages(s)[0].attachment, null);
  });

  test('a PDF is a link, not an image', () => {
    const s = online([withFile('m1', 'c1', file({ kind: 'pdf', content_type: 'application/pdf', width: null, height: null }))]);
    const a = messages(s)[0].attachment;
    assert.equal(a.image, false);
    assert.equal(a.width, null);
  });

  test('a link elsewhere, a script URL or an unknown kind is dropped', () => {
    for (const bad of [
      file({ url: 'javascript:alert(1)' }),
      file({ url: 'https://evil.example/a.png' }),
      file({ url: '//evil.example/a.png' }),
      file({ kind: 'html' }),
      file({ id: '' }),
      'shot.png',
    ]) {
      assert.equal(S.cleanAttachment(bad), null, JSON.stringify(bad));
    }
  });

  test('an upload shows at once as a pending message with its progress, not in the outbox', () => {
    let s = run(online(), started());
    let [m] = messages(s);
    assert.equal(m.pending, true);
    assert.equal(m.clientId, 'up-1');
    assert.equal(m.attachment.uploading, true);
    assert.equal(m.attachment.name, 'shot.png');
    assert.deepEqual(s.outbox, []);   // a reconnect never sends a file through the socket
    s = run(s, (x) => S.uploadProgress(x, 'up-1', 0.5));
    assert.equal(messages(s)[0].attachment.progress, 0.5);
    s = run(s, (x) => S.uploadProgress(x, 'up-1', 7));
    assert.equal(messages(s)[0].attachment.progress, 1);
    [m] = messages(s);
    assert.equal(m.pending, true);
  });

  test('message.ack with the attachment confirms the upload (whichever comes first)', () => {
    const ack = { type: 'message.ack', id: 'up-1', message: withFile('m9', 'up-1') };
    const viaSocket = run(online(), started(), ack);
    const viaHttp = run(online(), started(), (x) => S.uploadDone(x, { id: 'up-1', message: withFile('m9', 'up-1') }));
    for (const s of [viaSocket, viaHttp, run(viaSocket, (x) => S.uploadDone(x, { id: 'up-1', message: withFile('m9', 'up-1') }))]) {
      const all = messages(s);
      assert.equal(all.length, 1);
      assert.equal(all[0].id, 'm9');
      assert.equal(all[0].pending, false);
      assert.equal(all[0].attachment.url, URL);
      assert.equal(all[0].attachment.uploading, false);
    }
  });

  test('another tab hears of the file as a new message', () => {
    const s = run(online(), { type: 'message.ack', id: 'up-7', message: withFile('m7', 'up-7') });
    assert.equal(messages(s)[0].attachment.name, 'shot.png');
  });

  test('a refused upload removes its bubble and shows the server\'s words', () => {
    const s = run(online(), started(), (x) => S.uploadFailed(x, 'up-1', 'That file is too large: the limit is 5 MB.'));
    assert.deepEqual(messages(s), []);
    assert.equal(s.alert.text, 'That file is too large: the limit is 5 MB.');
    const lost = run(online(), started(), (x) => S.uploadFailed(x, 'up-1', ''));
    assert.equal(lost.alert.text, 'The file could not be sent. Please check your connection and try again.');
  });

  test('a reconnect keeps an upload still on its way', () => {
    const s = run(online(), started(), S.connectionClosed, ready([]));
    assert.equal(messages(s).length, 1);
    assert.equal(messages(s)[0].attachment.uploading, true);
  });
});
