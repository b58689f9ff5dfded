// Server-Sent Events parsing for `POST /v1/query` with `stream: true`
// (fetch + ReadableStream: EventSource cannot POST or send headers).
//
// The query component writes named events, each `event: NAME\ndata: JSON\n\n`,
// and `: keep-alive` comments while the model is silent:
//   sources -> delta* -> done   (or error instead of done)
// The parser follows the WHATWG rules that matter here: lines end with
// CRLF, LF or CR (also split across chunks); `:` starts a comment; one
// leading space after the colon is dropped; several `data` lines join
// with "\n"; a blank line dispatches; an unfinished event at the end of
// the stream is dropped.

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.event = '';
    this.data = [];
    this.skipLf = false; // the last chunk ended with CR: a leading LF is its CRLF
  }

  /** Feed decoded text. */
  push(text) {
    if (this.skipLf && text.length > 0) {
      if (text[0] === '\n') text = text.slice(1);
      this.skipLf = false;
    }
    this.buffer += text;
    for (;;) {
      const match = /\r\n|\n|\r/.exec(this.buffer);
      if (!match) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      if (match[0] === '\r' && this.buffer === '') this.skipLf = true;
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length > 0) {
        this.onEvent({ event: this.event || 'message', data: this.data.join('\n') });
      }
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}

/**
 * The events of a `text/event-stream` body, as `{event, data}` with `data`
 * parsed as JSON (a non-JSON `data` becomes `{text}`), in order. Leaving
 * the loop early cancels the body.
 */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const queue = [];
  const parser = new SseParser((e) => queue.push(e));
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      parser.push(value);
      while (queue.length > 0) {
        const e = queue.shift();
        let data;
        try {
          data = JSON.parse(e.data);
        } catch {
          data = { text: e.data };
        }
        yield { event: e.event, data };
      }
    }
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}
