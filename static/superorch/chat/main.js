/*
 * Super Orchestrator – browser chat client (entry module).
 *
 * Implements the client side of the chat wire protocol, version 1 (docs/protocol.md).
 * Native ES modules, no framework and no build step:
 *   state.js          the state and its pure reducer applyFrame(state, frame)
 *   connection.js     the WebSocket: session.start, reconnect with backoff, ping
 *   view.js           the DOM from the state (markdown.js: marked + DOMPurify)
 *   composer.js       the message box, send, stop, suggestions, character limit
 *   widget-bridge.js  postMessage with the embedding page (origins.js: who may talk)
 *   storage.js, theme.js, dom.js  small helpers
 *
 * Configuration comes from data-* attributes on #superorch and the json_script
 * blocks #so-suggestions and #so-parent-origins, so the page runs under a strict CSP
 * (script-src 'self'; style-src 'self').
 *
 * Two modes, from #superorch[data-mode]:
 *   "app"    – the full page at /: connects at once.
 *   "widget" – the embeddable widget's frame (/widget/<site>/, in an iframe that
 *              static/superorch/widget.js puts on a site's pages). It connects only
 *              after the host's `init` (or 3 s without one).
 *
 * The only global is window.SuperOrchChat = {send(text), state} (a test hook).
 */

import { createComposer } from './composer.js';
import { createConnection } from './connection.js';
import { newId, readJsonScript } from './dom.js';
import { setStrings, t } from './i18n.js';
import * as S from './state.js';
import { persist, store, storageKeys } from './storage.js';
import { setUpTheme } from './theme.js';
import { createView, findElements } from './view.js';
import { createWidgetBridge, noBridge } from './widget-bridge.js';

const positiveInt = (value, fallback) => {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};

/** Everything the page tells the client, from #superorch's data-* and the json_script blocks. */
function readConfig(root) {
  const d = root.dataset;
  const widget = d.mode === 'widget';
  return {
    widget,
    site: d.site || 'demo',
    wsPath: d.ws || '/ws/chat/',
    locale: document.documentElement.lang || '',   // chosen by the server (chat/i18n.py)
    maxMessageChars: positiveInt(d.maxMessageChars, S.DEFAULT_MAX_MESSAGE_CHARS),
    maxFrameBytes: positiveInt(d.maxFrameBytes, 0),   // 0: no check before sending
    theme: widget ? (d.theme || 'auto') : null,
    suggestions: S.cleanSuggestions(readJsonScript('so-suggestions', [])),
    parentOrigins: widget ? readJsonScript('so-parent-origins', []) : [],
    uploadUrl: d.uploadUrl || '',
    attachmentMaxBytes: positiveInt(d.attachmentMaxBytes, 0),   // 0: the site takes no files
  };
}

function main(root) {
  const config = readConfig(root);
  const keys = storageKeys(config.site);
  const el = findElements(root);

  let state = S.initialState({
    token: store.get(keys.token),
    outbox: store.getJSON(keys.outbox, []),
    feedback: store.getJSON(keys.feedback, {}),
    greeting: el.greeting ? el.greeting.textContent : '',
    suggestions: config.suggestions,
    maxMessageChars: config.maxMessageChars,
    now: new Date().toISOString(),
  });

  let connection = null;
  let bridge = noBridge();
  let composer = null;

  /** The one way the state changes: store what changed, render, then run the effects. */
  function update(next) {
    const prev = state;
    state = next;
    persist(keys, prev, next);
    view.render(next);
    for (const effect of next.effects) runEffect(effect);
  }

  function runEffect(effect) {
    switch (effect.type) {
      case 'flush': flushOutbox(); break;
      case 'ready': bridge.post({ type: 'ready', conversation: effect.conversation }); break;
      case 'notify': bridge.notify(effect.message); break;
      case 'restore-input': if (composer) composer.restore(effect.text); break;
      case 'resync': resync(); break;
      default: break;   // scroll: done by the view
    }
  }

  // Frames of a turn were lost (a `seq` gap), or a running turn fell silent for longer
  // than the server ever stays silent (it sends turn.progress every few seconds): start
  // the session again with `since`; session.ready brings the replies and the running turn.
  const RESYNC_MIN_MS = 3000;
  const SILENT_TURN_MS = 20000;
  let lastResync = 0;
  let lastFrame = Date.now();
  function resync() {
    if (!connection || Date.now() - lastResync < RESYNC_MIN_MS) return;
    lastResync = Date.now();
    update(S.sessionRestarted(state));
    connection.restart('resync');
  }
  setInterval(() => {
    if (connection && connection.ready && S.indicators(state).running && Date.now() - lastFrame > SILENT_TURN_MS) {
      lastFrame = Date.now();
      resync();
    }
  }, 5000);

  function flushOutbox() {
    if (!connection.ready) return;
    for (const m of state.outbox) connection.send({ type: 'message.send', id: m.id, text: m.text });
  }

  /** Send a user message; returns its client id, or null when there is nothing to send. */
  function send(text) {
    const body = S.outgoingText(text, state.maxMessageChars);
    if (!body) return null;
    const id = newId();
    const frame = { type: 'message.send', id, text: body };
    if (config.maxFrameBytes && S.frameBytes(frame) > config.maxFrameBytes) {
      // The server would refuse the frame without saying which message it was.
      update(S.raiseAlert(state, t(S.ERROR_FALLBACK.too_large), { code: 'too_large' }));
      return null;
    }
    update(S.sendMessage(state, { id, text: body, now: new Date().toISOString() }));
    connection.send(frame);
    return id;
  }

  /**
   * Send a file over HTTP with the conversation's token (never through the socket:
   * docs/attachments.md). XMLHttpRequest, not fetch: only it reports an upload's
   * progress in every browser. The server's refusals come in plain words.
   */
  function sendFile(file) {
    if (!state.token || !connection.ready) {
      update(S.raiseAlert(state, t('attach_connecting')));
      return;
    }
    const max = config.attachmentMaxBytes;
    if (max && file.size > max) {
      update(S.raiseAlert(state, t('attach_too_large', { mb: Math.round(max / 1024 / 1024) })));
      return;
    }
    const id = newId();
    update(S.uploadStarted(state, { id, name: file.name, size: file.size, now: new Date().toISOString() }));
    const form = new FormData();
    form.append('file', file);
    form.append('id', id);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', config.uploadUrl);
    xhr.setRequestHeader('Authorization', `Bearer ${state.token}`);
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) update(S.uploadProgress(state, id, e.loaded / e.total));
    });
    xhr.addEventListener('load', () => {
      const body = xhr.response && typeof xhr.response === 'object' ? xhr.response : {};
      if (xhr.status >= 200 && xhr.status < 300 && body.message) update(S.uploadDone(state, { id, message: body.message }));
      else update(S.uploadFailed(state, id, typeof body.message === 'string' ? body.message : ''));
    });
    xhr.addEventListener('error', () => update(S.uploadFailed(state, id, '')));
    xhr.send(form);
  }

  function sendFeedback(messageId, value) {
    if (value !== 'up' && value !== 'down') return;
    if (!connection.send({ type: 'feedback', message: messageId, value })) {
      update(S.raiseAlert(state, t('offline')));
      return;
    }
    update(S.feedbackSent(state, messageId, value));
  }

  function retry(action) {
    if (!action) return;
    if (action.kind === 'resend') {
      const m = state.outbox.find((x) => x.id === action.ref);
      if (m) connection.send({ type: 'message.send', id: m.id, text: m.text });
    } else if (state.outbox.length) flushOutbox();
    else connection.reconnectSoon();
  }

  /** Forget the token, the outbox and the screen, and start over on a fresh socket. */
  function startOver() {
    update(S.startOver(state));
    composer.clear();
    connection.restart('new conversation');
  }

  const view = createView(root, el, {
    onFeedback: sendFeedback,
    onRetry(key, text) {
      update(S.removeItem(state, key));
      send(text);
      composer.focus();
    },
    onAlertRetry(action) {
      update(S.dismissAlert(state));
      retry(action);
      composer.focus();
    },
    onAlertDismiss() {
      update(S.dismissAlert(state));
      composer.focus();
    },
    // People in the loop: answered by conversation.status (or an error in plain words).
    onAskPerson: () => sendOrWarn({ type: 'human.request' }),
    onContactEmail: (email) => sendOrWarn({ type: 'contact.email', email }),
    onCsat: (score, comment) => sendOrWarn({ type: 'csat', score, ...(comment ? { comment } : {}) }),
    // Answered by approval.resolved to every page of the conversation (or an error in words).
    onApproval(approval, approve) {
      if (!connection.send({ type: 'approval.respond', approval, approve })) {
        update(S.raiseAlert(state, t('offline')));
        return;
      }
      update(S.approvalSent(state, approval));
    },
  });

  function sendOrWarn(frame) {
    if (!connection.send(frame)) {
      update(S.raiseAlert(state, t('offline')));
    }
  }

  connection = createConnection({
    path: config.wsPath,
    startFrame: () => S.sessionStart(state, { site: config.site, user: bridge.user, context: bridge.context, locale: config.locale }),
    onConnecting: (retrying) => update(S.connecting(state, { retry: retrying })),
    onReconnecting: () => update(S.setStatus(state, 'reconnecting')),
    onFrame: (frame) => { lastFrame = Date.now(); update(S.applyFrame(state, frame)); },
    onClosed: (code, reason) => update(S.connectionClosed(state, { code, reason })),
  });

  composer = createComposer(el, {
    maxChars: config.maxMessageChars,
    onSend: (text) => !!send(text),
    onCancel: () => connection.send({ type: 'turn.cancel' }),
    onFile: config.attachmentMaxBytes && config.uploadUrl ? sendFile : null,
  });

  setUpTheme({ widgetTheme: config.theme, storageKey: keys.theme, toggle: el.themeToggle });

  if (el.newConv) {
    el.newConv.addEventListener('click', () => {
      startOver();
      composer.focus();
    });
  }

  if (config.widget) {
    bridge = createWidgetBridge(root, el.close, config.parentOrigins, {
      connect: () => connection.connect(),
      ready: () => connection.ready,
      sendContext: (context) => connection.send({ type: 'context.update', context }),
      restartSession() {
        update(S.sessionRestarted(state));
        connection.restart('identity changed');
      },
      reset(started) {
        if (started) startOver();
        else update(S.startOver(state));
      },
      opened() {
        composer.refresh();   // the composer measured 0 while hidden
        view.scrollToBottom(true);
        composer.focus({ preventScroll: true });
      },
    });
  }

  view.render(state);
  if (config.widget) bridge.start();
  else connection.connect();

  // Test hook: the only global.
  Object.defineProperty(window, 'SuperOrchChat', {
    value: Object.freeze({
      send,
      get state() {
        return {
          status: state.status,
          ready: connection.ready,
          conversation: state.conversation,
          agent: { ...state.agent },
          running: state.running.length > 0,
          outbox: state.outbox.map((m) => ({ ...m })),
          messages: S.shownMessages(state),
          since: state.syncedId,
          mode: config.widget ? 'widget' : 'app',
          open: config.widget ? bridge.open : true,
        };
      },
    }),
    configurable: false,
    writable: false,
  });
}

const root = document.getElementById('superorch');
if (root) {
  setStrings(readJsonScript('so-strings', {}));
  main(root);
}
