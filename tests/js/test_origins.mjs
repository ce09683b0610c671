// Which embedding pages the widget's frame listens to (static/superorch/chat/origins.js).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cleanOrigins, originMatches, parentAllowed } from '../../static/superorch/chat/origins.js';

test('exact origins', () => {
  assert.equal(originMatches('https://shop.example.com', 'https://shop.example.com'), true);
  assert.equal(originMatches('https://shop.example.com', 'https://shop.example.com/'), true);
  assert.equal(originMatches('https://shop.example.com', 'http://shop.example.com'), false);
  assert.equal(originMatches('https://shop.example.com:8443', 'https://shop.example.com'), false);
  assert.equal(originMatches('https://evil.com', 'https://shop.example.com'), false);
});

test('wildcard subdomains: same scheme and port, never the bare domain', () => {
  assert.equal(originMatches('https://a.example.com', 'https://*.example.com'), true);
  assert.equal(originMatches('https://a.b.example.com', 'https://*.example.com'), true);
  assert.equal(originMatches('https://example.com', 'https://*.example.com'), false);
  assert.equal(originMatches('https://aexample.com', 'https://*.example.com'), false);
  assert.equal(originMatches('http://a.example.com', 'https://*.example.com'), false);
  assert.equal(originMatches('https://a.example.com:444', 'https://*.example.com'), false);
  assert.equal(originMatches('https://a.example.com', 'https://*.example.com:443'), true);
  assert.equal(originMatches('http://a.localhost:8001', 'http://*.localhost:8001'), true);
});

test('never: "*", opaque origins, junk', () => {
  assert.equal(originMatches('https://a.example.com', '*'), false);
  assert.equal(originMatches('null', 'null'), false);
  assert.equal(originMatches('', 'https://x.com'), false);
  assert.equal(originMatches('https://x.com/path', 'https://x.com'), false);
  assert.equal(originMatches('https://x.com', 'https://x*.com'), false);
  assert.equal(originMatches('https://a.x.com', 'https://*..x.com'), false);
  assert.equal(originMatches('https://x.com', 'not a url'), false);
});

test('the app origin is always allowed; the list is cleaned', () => {
  assert.equal(parentAllowed('http://127.0.0.1:8000', 'http://127.0.0.1:8000', []), true);
  assert.equal(parentAllowed('http://127.0.0.1:8001', 'http://127.0.0.1:8000', []), false);
  assert.equal(parentAllowed('http://127.0.0.1:8001', 'http://127.0.0.1:8000', cleanOrigins([' http://127.0.0.1:8001 ', '', 3])), true);
  assert.deepEqual(cleanOrigins(['a', ' ', null, ' b ']), ['a', 'b']);
  assert.deepEqual(cleanOrigins('nope'), []);
});
