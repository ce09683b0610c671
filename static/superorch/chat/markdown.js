/*
 * Model and staff text as Markdown: marked -> DOMPurify, nothing else ever reaches innerHTML.
 * marked and DOMPurify are the vendored classic scripts loaded before the modules
 * (static/vendor); without them the text is shown as plain text, never as HTML.
 */

const marked = window.marked;
const DOMPurify = window.DOMPurify;

export const canRenderMarkdown = typeof marked === 'object' && marked !== null && typeof marked.parse === 'function' &&
  typeof DOMPurify === 'function' && typeof DOMPurify.sanitize === 'function';

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  // No images: a reply must not make the browser fetch URLs by itself.
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'img', 'picture', 'source', 'video', 'audio', 'iframe'],
  FORBID_ATTR: ['style'],   // the CSP would block them anyway
};

if (canRenderMarkdown) {
  marked.use({ gfm: true, breaks: true });
  // Links open in a new tab without an opener.
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer');
    }
  });
}

export function renderMarkdownInto(target, text) {
  if (!canRenderMarkdown) {
    target.textContent = text;
    target.classList.add('so-plain');
    return;
  }
  let html = '';
  try {
    html = marked.parse(text, { async: false });
  } catch (_) {
    target.textContent = text;
    return;
  }
  target.innerHTML = DOMPurify.sanitize(typeof html === 'string' ? html : '', PURIFY_CONFIG);
}
