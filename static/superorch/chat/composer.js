/*
 * The composer: the message box (Enter sends, Shift+Enter is a new line), the send and
 * stop buttons, the character counter near the server's limit, the start screen's
 * suggestions (a click sends one), and the paperclip (when the site takes files).
 */

import { pageLocale } from './i18n.js';

/**
 * el: the page's elements (view.js findElements). maxChars: the server's limit
 * (SUPERORCH_MAX_MESSAGE_CHARS). onSend(text) returns true when the text was taken
 * (the box is then emptied); onCancel() stops the running reply; onFile(file) sends a
 * file the person picked (the paperclip, only on pages whose site takes files).
 */
export function createComposer(el, { maxChars, onSend, onCancel, onFile }) {
  const counterFrom = Math.floor(maxChars * 0.875);   // 3,500 of 4,000: show the counter near the limit
  el.input.maxLength = maxChars;

  function autoGrow() {
    // Setting style through the CSSOM is allowed under style-src 'self'.
    const ta = el.input;
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight, 200) + 'px';
  }

  /** Update the send button, the counter and the height to the box's text. */
  function refresh() {
    const len = el.input.value.length;
    el.send.disabled = !el.input.value.trim();
    if (len >= counterFrom) {
      el.counter.hidden = false;
      el.counter.textContent = `${len.toLocaleString(pageLocale())} / ${maxChars.toLocaleString(pageLocale())}`;
      el.counter.classList.toggle('so-counter--full', len >= maxChars);
    } else if (!el.counter.hidden) {
      el.counter.hidden = true;
      el.counter.textContent = '';
    }
    autoGrow();
  }

  function submit() {
    const text = el.input.value;
    if (!text.trim()) return;
    if (onSend(text)) clear();
  }

  function clear() {
    el.input.value = '';
    refresh();
  }

  /** Put a refused message back, unless the person is already typing another. */
  function restore(text) {
    if (el.input.value) return;
    el.input.value = text;
    refresh();
  }

  el.input.addEventListener('input', refresh);
  el.input.addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a newline; never send while an IME is composing.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit();
    el.input.focus();
  });
  el.stop.addEventListener('click', () => {
    onCancel();
    el.input.focus();
  });
  el.suggestions.addEventListener('click', (e) => {
    const btn = e.target.closest('button.so-suggestion');
    if (!btn) return;
    onSend(btn.textContent);
    el.input.focus();
  });

  if (el.attach && el.file && onFile) {
    el.attach.addEventListener('click', () => el.file.click());
    el.file.addEventListener('change', () => {
      const file = el.file.files && el.file.files[0];
      el.file.value = '';   // the same file again is a new pick
      if (file) onFile(file);
      el.input.focus();
    });
  }

  refresh();
  return { refresh, clear, restore, focus: (opts) => el.input.focus(opts) };
}
