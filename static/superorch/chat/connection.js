/*
 * The WebSocket (docs/protocol.md): session.start first, then frames both ways.
 * Reconnects with exponential backoff and jitter, at once when the network or the tab
 * comes back; pings, and drops a socket that has been silent too long. A refused
 * session (close 4400, 4401, 4403) is not retried; after 4429 it waits longest.
 */

const PING_MS = 25000;
const DEAD_MS = 65000;              // no frame at all for this long: assume a dead socket
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 30000;
const LONG_WAIT_ATTEMPT = 5;        // after 4429, start at the long end of the backoff
export const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403]);

/**
 * options:
 *   path                 the socket's path (/ws/chat/)
 *   startFrame()         the session.start frame to send on open
 *   onConnecting(retry)  a socket is being opened (retry: not the first attempt since session.ready)
 *   onReconnecting()     waiting to reconnect
 *   onFrame(frame)       a frame from the server (an object with a string `type`)
 *   onClosed(code, reason)  the socket closed (before any reconnect is scheduled)
 */
export function createConnection(options) {
  let ws = null;
  let generation = 0;         // bumps on every new socket; stale callbacks check it
  let attempt = 0;            // reconnect attempts since the last session.ready
  let reconnectTimer = null;
  let pingTimer = null;
  let lastFrameAt = 0;
  let ready = false;          // session.ready received on the current socket
  let fatal = false;          // refused: do not reconnect by ourselves

  function url() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}${options.path}`;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    fatal = false;
    ready = false;
    const gen = ++generation;
    options.onConnecting(attempt > 0);
    let socket;
    try {
      socket = new WebSocket(url());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    ws = socket;

    socket.addEventListener('open', () => {
      if (gen !== generation) return;
      lastFrameAt = Date.now();
      rawSend(options.startFrame());
      startPing();
    });

    socket.addEventListener('message', (ev) => {
      if (gen !== generation) return;
      lastFrameAt = Date.now();
      let frame;
      try { frame = JSON.parse(ev.data); } catch (_) { return; }
      if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      if (frame.type === 'session.ready') {
        ready = true;
        attempt = 0;
        fatal = false;
      }
      try {
        options.onFrame(frame);
      } catch (err) {
        // A rendering bug must not kill the connection handler.
        if (window.console) console.error('superorch: failed to handle frame', frame.type, err);
      }
    });

    socket.addEventListener('close', (ev) => {
      if (gen !== generation) return;
      closed(ev.code, ev.reason);
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  function closed(code, reason) {
    stopPing();
    ws = null;
    ready = false;
    options.onClosed(code, reason);
    if (FATAL_CLOSE_CODES.has(code)) {
      fatal = true;
      return;
    }
    if (code === 4429) attempt = Math.max(attempt, LONG_WAIT_ATTEMPT);
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (reconnectTimer || fatal) return;
    options.onReconnecting();
    // A random delay in [base/2, base], base 1 s .. 30 s.
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    attempt += 1;
    reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
  }

  /** Reconnect now (network came back, tab visible again): skip the remaining wait. */
  function reconnectSoon() {
    if (fatal || (ws && ws.readyState <= WebSocket.OPEN)) return;
    if (reconnectTimer) { clearTimeout(reconnectTimer); reconnectTimer = null; }
    connect();
  }

  function startPing() {
    stopPing();
    pingTimer = setInterval(() => {
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - lastFrameAt > DEAD_MS) {
        // No pong for two rounds: the socket is dead without knowing it. Its close
        // event may take long to come: drop it (generation bump) and go on now.
        try { ws.close(); } catch (_) { /* ignore */ }
        generation++;
        closed(1006, '');
        return;
      }
      rawSend({ type: 'ping' });
    }, PING_MS);
  }

  function stopPing() {
    clearInterval(pingTimer);
    pingTimer = null;
  }

  function rawSend(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (_) {
      return false;
    }
  }

  /** Send a frame that needs an established session; false when there is none. */
  function send(frame) {
    return ready && rawSend(frame);
  }

  /** Drop the current socket (its late events are ignored) without reconnecting. */
  function drop(reason) {
    generation++;
    if (ws) { try { ws.close(1000, reason); } catch (_) { /* ignore */ } }
    ws = null;
    ready = false;
    stopPing();
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
  }

  /** A fresh socket now, the backoff forgotten (new conversation, another user). */
  function restart(reason) {
    drop(reason);
    attempt = 0;
    connect();
  }

  window.addEventListener('online', reconnectSoon);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') reconnectSoon(); });

  return {
    connect,
    restart,
    drop,
    send,
    reconnectSoon,
    get ready() { return ready; },
  };
}
