// Unit tests of the page's SSE parser (components/web/assets/sse.js) on the
// bytes the query component emits (crates/answer/src/sse.rs), cut at every
// position. Run: node --test tests/e2e/sse.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, readEvents } from '../../components/web/assets/sse.js';

const STREAM =
  'event: sources\ndata: {"index":"docs","index_version":1,"sources":[{"id":1,"filename":"a.md","text":"x"}],"retrieval":{"mode":"hybrid"}}\n\n' +
  ': keep-alive\n\n' +
  'event: delta\ndata: {"text":"The café opens"}\n\n' +
  'event: delta\ndata: {"text":" at 8 [1].\\nline \\"two\\""}\n\n' +
  'event: done\ndata: {"answer":"The café opens at 8 [1].","citations":[{"source":1}],"degraded":false}\n\n';

function parseAll(pieces) {
  const events = [];
  const parser = new SseParser((e) => events.push(e));
  for (const piece of pieces) parser.push(piece);
  return events.map((e) => [e.event, JSON.parse(e.data)]);
}

test('parses the named events the query component writes, skipping comments', () => {
  const events = parseAll([STREAM]);
  assert.deepEqual(
    events.map(([name]) => name),
    ['sources', 'delta', 'delta', 'done'],
  );
  assert.equal(events[0][1].sources[0].filename, 'a.md');
  assert.equal(events[1][1].text + events[2][1].text, 'The café opens at 8 [1].\nline "two"');
  assert.equal(events[3][1].citations[0].source, 1);
});

test('gives the same events wherever the stream is cut', () => {
  const whole = parseAll([STREAM]);
  for (let i = 0; i <= STREAM.length; i++) {
    assert.deepEqual(parseAll([STREAM.slice(0, i), STREAM.slice(i)]), whole, `cut at ${i}`);
  }
  assert.deepEqual(parseAll(STREAM.split('')), whole);
});

test('accepts CRLF and CR line ends, also split between chunks', () => {
  const crlf = STREAM.replaceAll('\n', '\r\n');
  const whole = parseAll([STREAM]);
  for (let i = 0; i <= crlf.length; i++) {
    assert.deepEqual(parseAll([crlf.slice(0, i), crlf.slice(i)]), whole, `cut at ${i}`);
  }
  assert.deepEqual(parseAll([STREAM.replaceAll('\n', '\r')]), whole);
});

test('joins data lines, keeps the default event name and drops an unfinished event', () => {
  const events = [];
  const parser = new SseParser((e) => events.push(e));
  parser.push('data: {"a":\ndata:1}\n\n');
  parser.push('event: delta\ndata: {"text":"cut"}\n');
  assert.deepEqual(events, [{ event: 'message', data: '{"a":\n1}' }]);
});

test('readEvents decodes a byte stream into parsed events (UTF-8 split mid-character)', async () => {
  const bytes = new TextEncoder().encode(STREAM);
  const cut = STREAM.indexOf('é') + 1; // inside the two bytes of é
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(bytes.slice(0, cut));
      controller.enqueue(bytes.slice(cut));
      controller.close();
    },
  });
  const seen = [];
  for await (const e of readEvents(body)) seen.push(e);
  assert.deepEqual(
    seen.map((e) => e.event),
    ['sources', 'delta', 'delta', 'done'],
  );
  assert.equal(seen[1].data.text, 'The café opens');
});
