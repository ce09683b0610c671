/*
 * Renders the chat state (state.js) into the page's DOM.
 *
 * The log is reconciled by item key: a message keeps its element for its whole life
 * (a moved or re-created node would be announced again by the aria-live log), and
 * elements move only when the order changes. Assistant and staff text goes through
 * markdown.js (marked + DOMPurify); user and system text is set as textContent.
 * A streaming reply is re-rendered at most once per animation frame.
 */

import { h, icon } from './dom.js';
import { pageLocale, t } from './i18n.js';
import { renderMarkdownInto } from './markdown.js';
import { agentName, indicators, peopleView } from './state.js';

const STATUS_TEXT = { connecting: 'status_connecting', online: 'status_online', reconnecting: 'status_reconnecting', closed: 'status_closed' };

const reduceMotion = window.matchMedia ? window.matchMedia('(prefers-reduced-motion: reduce)') : null;

/** The page's elements, by the data-testid and classes of templates/chat/_chat_body.html. */
export function findElements(root) {
  const $ = (sel) => root.querySelector(sel);
  return {
    agentName: $('[data-testid="agent-name"]'),
    status: $('[data-testid="status"]'),
    statusText: $('.so-status__text'),
    themeToggle: $('[data-testid="theme-toggle"]'),
    newConv: $('[data-testid="new-conversation"]'),
    scroll: $('[data-testid="scroll"]'),
    start: $('[data-testid="start"]'),
    greeting: $('[data-testid="greeting"]'),
    suggestions: $('.so-suggestions'),
    log: $('[data-testid="messages"]'),
    typing: $('[data-testid="typing"]'),
    typingLabel: $('.so-typing__label'),
    alert: $('[data-testid="error"]'),
    alertText: $('.so-alert__text'),
    alertRetry: $('[data-testid="error-retry"]'),
    alertClose: $('[data-testid="error-dismiss"]'),
    form: $('[data-testid="composer-form"]'),
    input: $('[data-testid="composer"]'),
    counter: $('[data-testid="counter"]'),
    send: $('[data-testid="send"]'),
    stop: $('[data-testid="stop"]'),
    close: $('[data-testid="widget-close"]'),   // widget mode only
    askPerson: $('[data-testid="talk-to-person"]'),
    people: $('[data-testid="people"]'),
    peopleText: $('[data-testid="people-status"]'),
    emailForm: $('[data-testid="contact-email-form"]'),
    emailInput: $('[data-testid="contact-email"]'),
    csat: $('[data-testid="csat"]'),
    csatComment: $('[data-testid="csat-comment"]'),
    csatThanks: $('[data-testid="csat-thanks"]'),
    attach: $('[data-testid="attach"]'),        // only when the site takes files
    file: $('[data-testid="attach-file"]'),
  };
}

function parseDate(iso) {
  const d = iso ? new Date(iso) : new Date();
  return Number.isNaN(d.getTime()) ? new Date() : d;
}

/** A file's size in words: 12 KB, 1.5 MB. */
export function formatSize(bytes) {
  if (!(bytes > 0)) return '';
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const formatTime = (date) => date.toLocaleTimeString(pageLocale(), { hour: '2-digit', minute: '2-digit' });

// Writes only what changed: the log is aria-live, and needless mutations cost on every chunk.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setHidden(node, hidden) {
  if (node.hidden !== hidden) node.hidden = hidden;
}

function setData(node, key, value) {
  if (node.dataset[key] !== value) node.dataset[key] = value;
}

/**
 * handlers: onFeedback(messageId, value), onRetry(noticeKey, text),
 *           onAlertRetry(retry), onAlertDismiss(), onAskPerson(),
 *           onContactEmail(email), onCsat(score, comment), onApproval(approvalId, approve)
 */
export function createView(root, el, handlers) {
  const entries = new Map();          // item key -> {item, node, bubble, ...}
  const byNode = new WeakMap();       // element -> entry
  let current = null;                 // the state last rendered
  let renderedSuggestions = null;

  // -------------------------------------------------------------------------
  // Scrolling: follow new content only when the reader is already at the bottom
  // -------------------------------------------------------------------------

  let stickToBottom = true;
  el.scroll.addEventListener('scroll', () => {
    const s = el.scroll;
    stickToBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }, { passive: true });

  function scrollToBottom(force) {
    if (!force && !stickToBottom) return;
    stickToBottom = true;
    const behavior = reduceMotion && reduceMotion.matches ? 'auto' : 'smooth';
    // Smooth scrolling during fast streaming lags behind; jump when already close.
    const s = el.scroll;
    const far = s.scrollHeight - s.scrollTop - s.clientHeight > s.clientHeight;
    s.scrollTo({ top: s.scrollHeight, behavior: far || force ? 'auto' : behavior });
  }

  // -------------------------------------------------------------------------
  // Streaming text: at most one render per animation frame
  // -------------------------------------------------------------------------

  const dirty = new Set();
  let rafPending = false;
  function scheduleText(entry) {
    dirty.add(entry);
    if (rafPending) return;
    rafPending = true;
    requestAnimationFrame(() => {
      rafPending = false;
      for (const e of dirty) if (entries.get(e.item.key) === e) renderText(e);
      dirty.clear();
      scrollToBottom();
    });
  }

  function renderText(entry) {
    const { item, bubble } = entry;
    dirty.delete(entry);
    entry.shownText = item.text;
    entry.shownStreaming = item.streaming;
    if (item.role === 'assistant' || item.role === 'staff') {
      renderMarkdownInto(bubble, item.text);
      bubble.classList.toggle('so-msg__bubble--empty', item.streaming && !item.text);
    } else {
      bubble.textContent = item.text;   // user and system text: plain, white-space preserved by CSS
    }
  }

  // -------------------------------------------------------------------------
  // Messages
  // -------------------------------------------------------------------------

  function speakerName(state, item) {
    if (item.role === 'staff') return (item.agent && item.agent.name) || t('support_team');
    return agentName(state, item.agent);
  }

  function buildMessage(state, item) {
    const node = h('div', {
      class: `so-msg so-msg--${item.role}`,
      'data-testid': 'message',
      'data-role': item.role,
      'data-agent': item.agent ? item.agent.slug : '',
    });
    if (item.id) node.dataset.id = item.id;
    if (item.clientId) node.dataset.clientId = item.clientId;
    const entry = { item, node, bubble: null, nameEl: null, timeEl: h('time', { class: 'so-msg__time', 'aria-hidden': 'true' }),
      statusEl: null, actions: null, shownText: null, shownStreaming: null, shownCreated: undefined };

    if (item.role === 'system') {
      entry.bubble = h('p', { class: 'so-msg__system' });
      node.append(entry.bubble);
    } else {
      // The speaker's name is part of the message text so screen readers announce it.
      let who;
      if (item.role === 'user') {
        who = h('span', { class: 'so-sr-only', text: t('you_said') + ' ' });
      } else {
        who = h('span', { class: 'so-msg__name', text: speakerName(state, item) });
        if (item.role === 'staff') who.append(h('span', { class: 'so-msg__tag', text: t('team_tag') }));
        else entry.nameEl = who;   // an assistant's name follows its agent
      }
      const meta = h('div', { class: 'so-msg__meta' }, [who, entry.timeEl]);
      // dir=auto: a message's direction follows its own text (English in an Arabic page).
      entry.bubble = h('div', { class: 'so-msg__bubble' + (item.role === 'user' ? '' : ' so-md'), dir: 'auto' });
      node.append(meta, entry.bubble);
      if (item.role === 'user') {
        entry.fileEl = h('div', { class: 'so-msg__file', 'data-testid': 'attachment', hidden: true });
        entry.statusEl = h('div', { class: 'so-msg__status', 'aria-live': 'off' });
        node.append(entry.fileEl, entry.statusEl);
      }
    }
    byNode.set(node, entry);
    renderText(entry);
    return entry;
  }

  /** Local time on hover (title) and in a small <time> shown on hover/focus. */
  function setTimestamp(entry, created) {
    if (entry.shownCreated === created) return;
    if (entry.shownCreated !== undefined && !created) return;   // keep the time shown until the server's
    entry.shownCreated = created;
    const date = parseDate(created);
    entry.node.title = date.toLocaleString(pageLocale());
    entry.timeEl.dateTime = date.toISOString();
    entry.timeEl.textContent = formatTime(date);
  }

  function updateMessage(state, entry, item) {
    const { node } = entry;
    entry.item = item;
    setTimestamp(entry, item.created);
    node.classList.toggle('so-msg--pending', item.pending);
    node.classList.toggle('so-msg--streaming', item.streaming);
    // aria-busy keeps screen readers from re-reading a reply on every chunk.
    if (item.streaming) node.setAttribute('aria-busy', 'true');
    else node.removeAttribute('aria-busy');
    if (item.id) setData(node, 'id', item.id);
    setData(node, 'agent', item.agent ? item.agent.slug : '');
    if (entry.nameEl) setText(entry.nameEl, speakerName(state, item));

    if (entry.statusEl) {
      setData(node, 'state', item.failed ? 'failed' : item.pending ? 'sending' : 'sent');
      setText(entry.statusEl, item.failed ? t('not_sent') : item.pending ? t(state.status === 'online' ? 'sending' : 'waiting_connection') : '');
      setHidden(entry.statusEl, !item.pending && !item.failed);
    }

    if (item.text !== entry.shownText || item.streaming !== entry.shownStreaming) {
      if (item.streaming) scheduleText(entry);
      else renderText(entry);
    }
    if (entry.fileEl) renderAttachment(entry, item.attachment);
    setHidden(entry.bubble, !!item.attachment && !item.text);

    if (item.role === 'assistant' && item.id && !item.streaming && !entry.actions) {
      entry.actions = buildFeedback();
      entry.buttons = [...entry.actions.querySelectorAll('button.so-fb')];
      node.append(entry.actions);
    }
    if (entry.actions) updateFeedback(state, entry, item);
  }

  /** A user's file: its upload's progress, then a thumbnail (images) or a link (PDFs). */
  function renderAttachment(entry, a) {
    const shown = a ? [a.url, a.uploading, Math.round(a.progress * 20)].join('|') : '';
    if (entry.shownFile === shown) return;
    entry.shownFile = shown;
    const box = entry.fileEl;
    box.replaceChildren();
    setHidden(box, !a);
    if (!a) return;
    if (a.uploading) {
      const percent = Math.round(a.progress * 100);
      box.append(
        h('span', { class: 'so-msg__file-name', text: t('attach_sending', { name: a.name, percent }) }),
        h('progress', { class: 'so-msg__progress', max: '100', value: String(percent), 'aria-label': t('attach_sending_label', { name: a.name }) }),
      );
      return;
    }
    const size = formatSize(a.size);
    if (a.image) {
      const img = h('img', { class: 'so-msg__thumb', src: a.url, alt: a.name, loading: 'lazy', width: a.width, height: a.height });
      box.append(h('a', { href: a.url, target: '_blank', rel: 'noopener', 'aria-label': t('attach_open', { name: a.name }) }, [img]));
    }
    box.append(h('a', { class: 'so-msg__file-link', href: a.url, ...(a.image ? { target: '_blank', rel: 'noopener' } : { download: a.name }) }, [
      h('span', { 'aria-hidden': 'true', text: '📎 ' }), h('span', { text: a.name }),
    ]));
    if (size) box.append(h('span', { class: 'so-msg__file-size', text: size }));
  }

  function buildFeedback() {
    const button = (value, title) => h('button', {
      type: 'button', class: 'so-fb', 'data-testid': `feedback-${value}`, 'data-value': value, 'aria-pressed': 'false', title,
    }, [icon(value)]);
    return h('div', { class: 'so-msg__actions', role: 'group', 'aria-label': t('rate_reply') }, [
      button('up', t('good_reply')), button('down', t('bad_reply')),
    ]);
  }

  function updateFeedback(state, entry, item) {
    const name = agentName(state, item.agent);
    const chosen = state.feedback[item.id];
    const busy = state.feedbackPending[item.id];
    for (const btn of entry.buttons) {
      const value = btn.dataset.value;
      const label = t(value === 'up' ? 'good_reply_from' : 'bad_reply_from', { name });
      if (btn.getAttribute('aria-label') !== label) btn.setAttribute('aria-label', label);
      const pressed = value === chosen ? 'true' : 'false';
      if (btn.getAttribute('aria-pressed') !== pressed) btn.setAttribute('aria-pressed', pressed);
      btn.classList.toggle('so-fb--busy', busy === value);
    }
  }

  // -------------------------------------------------------------------------
  // Notices (agent joined, stopped, queued, a failed reply with its Retry)
  // -------------------------------------------------------------------------

  function buildNotice(item) {
    let node;
    if (item.testid === 'turn-error') {
      const btn = item.retryText
        ? h('button', { type: 'button', class: 'so-btn so-btn--small', 'data-testid': 'retry', 'aria-label': t('retry_label') },
          [icon('retry'), h('span', { text: t('retry') })])
        : null;
      node = h('div', { class: 'so-notice so-notice--error', 'data-testid': 'turn-error' }, [
        h('span', { class: 'so-notice__text', text: item.text }), btn,
      ]);
    } else {
      node = h('div', { class: 'so-notice' + (item.notice ? ` so-notice--${item.notice}` : ''), 'data-testid': item.testid }, [
        h('span', { class: 'so-notice__text', text: item.text }),
      ]);
      if (item.notice === 'agent') {
        node.dataset.reason = item.reason;
        node.dataset.agent = item.agent;
      }
    }
    const entry = { item, node };
    byNode.set(node, entry);
    return entry;
  }

  // -------------------------------------------------------------------------
  // Approval cards (approval.request): Approve / Decline, or "our team decides"
  // -------------------------------------------------------------------------

  const OUTCOME_WORDS = {
    approved: 'approved',
    declined: 'declined_nothing',
    expired: 'expired_nothing',
  };

  function buildApproval(item) {
    const title = t(item.by === 'staff' ? 'approval_by_staff' : 'approval_needed');
    const approve = h('button', { type: 'button', class: 'so-btn so-btn--small so-btn--primary', 'data-testid': 'approve', 'data-approve': 'true', text: t('approve') });
    const decline = h('button', { type: 'button', class: 'so-btn so-btn--small', 'data-testid': 'decline', 'data-approve': 'false', text: t('decline') });
    const actions = h('div', { class: 'so-approval__actions' }, item.by === 'user' ? [approve, decline] : []);
    const outcome = h('div', { class: 'so-approval__outcome', 'data-testid': 'approval-outcome', role: 'status' });
    const node = h('div', {
      class: 'so-approval', 'data-testid': 'approval', 'data-by': item.by, role: 'group', 'aria-label': title,
    }, [
      h('div', { class: 'so-approval__title', text: title }),
      h('div', { class: 'so-approval__summary', 'data-testid': 'approval-summary', text: item.summary }),
      actions,
      outcome,
    ]);
    const entry = { item, node, actions, outcome, buttons: [approve, decline] };
    byNode.set(node, entry);
    return entry;
  }

  function updateApproval(entry, item) {
    entry.item = item;
    const decided = !!item.outcome;
    setHidden(entry.actions, decided || item.by !== 'user');
    for (const btn of entry.buttons) btn.disabled = item.sending || decided;
    setText(entry.outcome, decided ? t(OUTCOME_WORDS[item.outcome]) : (item.sending ? t('sending_answer') : ''));
    setData(entry.node, 'outcome', item.outcome || '');
  }

  el.log.addEventListener('click', (e) => {
    const answer = e.target.closest('.so-approval button[data-approve]');
    if (answer) {
      const entry = byNode.get(answer.closest('.so-approval'));
      if (entry && !entry.item.outcome && !entry.item.sending) handlers.onApproval(entry.item.id, answer.dataset.approve === 'true');
      return;
    }
    const fb = e.target.closest('button.so-fb');
    if (fb) {
      const entry = byNode.get(fb.closest('.so-msg'));
      if (entry && entry.item.id) handlers.onFeedback(entry.item.id, fb.dataset.value);
      return;
    }
    const retry = e.target.closest('button[data-testid="retry"]');
    if (retry) {
      const entry = byNode.get(retry.closest('.so-notice'));
      if (entry) handlers.onRetry(entry.item.key, entry.item.retryText);
    }
  });

  // -------------------------------------------------------------------------
  // The log: create, update, order, remove
  // -------------------------------------------------------------------------

  function renderLog(state) {
    const keys = new Set();
    for (const item of state.log) {
      keys.add(item.key);
      let entry = entries.get(item.key);
      if (!entry) {
        if (item.kind === 'message') entry = buildMessage(state, item);
        else if (item.kind === 'approval') entry = buildApproval(item);
        else entry = buildNotice(item);
        entries.set(item.key, entry);
      }
      if (item.kind === 'message') updateMessage(state, entry, item);
      else if (item.kind === 'approval') updateApproval(entry, item);
    }
    for (const [key, entry] of entries) {
      if (!keys.has(key)) {
        entry.node.remove();
        entries.delete(key);
        dirty.delete(entry);
      }
    }
    // Move only what is out of place.
    let prev = null;
    for (const item of state.log) {
      const node = entries.get(item.key).node;
      const expected = prev ? prev.nextSibling : el.log.firstChild;
      if (node !== expected) el.log.insertBefore(node, expected);
      prev = node;
    }
  }

  // -------------------------------------------------------------------------
  // Start screen, header, indicators, alert
  // -------------------------------------------------------------------------

  function renderStart(state) {
    if (state.greeting && el.greeting.textContent !== state.greeting) el.greeting.textContent = state.greeting;
    const key = JSON.stringify(state.suggestions);
    if (key !== renderedSuggestions) {   // else keep focus on an existing button
      renderedSuggestions = key;
      el.suggestions.replaceChildren(...state.suggestions.map((s) => h('li', null, [
        h('button', { type: 'button', class: 'so-suggestion', 'data-testid': 'suggestion', text: s }),
      ])));
    }
    const empty = !state.log.some((it) => it.kind === 'message');
    setHidden(el.start, !empty);
    setData(root, 'empty', empty ? 'true' : 'false');
  }

  function renderHeader(state) {
    setText(el.agentName, state.agent.name);
    setData(root, 'agent', state.agent.slug);
    setData(el.status, 'state', state.status);
    setText(el.statusText, STATUS_TEXT[state.status] ? t(STATUS_TEXT[state.status]) : state.status);
  }

  function renderIndicators(state) {
    const ind = indicators(state);
    setHidden(el.typing, !ind.typing);
    if (ind.typing) {
      setText(el.typingLabel, ind.label);
      setData(el.typing, 'tool', ind.tool ? 'true' : 'false');
    }
    setHidden(el.stop, !ind.running);
    setData(root, 'running', ind.running ? 'true' : 'false');
    return ind;
  }

  function renderAlert(state) {
    const alert = state.alert;
    setHidden(el.alert, !alert);
    if (!alert) return;
    setText(el.alertText, alert.text);
    setHidden(el.alertRetry, !alert.retry);
  }

  /** People in the loop: the header button, the status words, the email form, the rating. */
  function renderPeople(state) {
    const view = peopleView(state);
    if (el.askPerson) setHidden(el.askPerson, !view.askButton);
    const shown = !!view.banner || view.askEmail || view.askCsat || view.rated !== null;
    setHidden(el.people, !shown);
    setData(root, 'people', state.people.status);
    setText(el.peopleText, view.banner);
    setHidden(el.peopleText, !view.banner);
    setHidden(el.emailForm, !view.askEmail);
    setHidden(el.csat, !view.askCsat);
    setHidden(el.csatThanks, view.rated === null);
    if (view.rated !== null) setText(el.csatThanks, t('csat_thanks', { score: view.rated }));
  }

  if (el.askPerson) el.askPerson.addEventListener('click', () => handlers.onAskPerson());
  el.emailForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!el.emailInput.checkValidity() || !el.emailInput.value.trim()) {
      el.emailInput.reportValidity();
      return;
    }
    handlers.onContactEmail(el.emailInput.value.trim());
  });
  el.csat.addEventListener('click', (event) => {
    const button = event.target.closest('[data-score]');
    if (button) handlers.onCsat(Number(button.dataset.score), el.csatComment.value.trim());
  });

  el.alertClose.addEventListener('click', () => handlers.onAlertDismiss());
  el.alertRetry.addEventListener('click', () => handlers.onAlertRetry(current && current.alert && current.alert.retry));

  /** Show `state`; scrolls as its effects ask (and while the typing line shows). */
  function render(state) {
    const first = current === null;
    renderHeader(state);
    renderLog(state);
    renderStart(state);
    renderAlert(state);
    renderPeople(state);
    const ind = renderIndicators(state);
    current = state;
    const scrolls = (state.effects || []).filter((e) => e.type === 'scroll');
    if (scrolls.some((e) => e.force)) scrollToBottom(true);
    else if (scrolls.length || (ind.typing && !first)) scrollToBottom();
  }

  return { render, scrollToBottom };
}
