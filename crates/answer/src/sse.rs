//! Server-Sent Events encoding of [`Event`]s (`POST /v1/query` with
//! `stream: true`):
//!
//! ```text
//! event: sources
//! data: {"index":"docs","index_version":1,"sources":[...],"retrieval":{...}}
//!
//! event: delta
//! data: {"text":"The café opens at 8 [1]."}
//!
//! : keep-alive
//!
//! event: done
//! data: {"answer":"...","citations":[...],"usage":{...},...}
//! ```
//!
//! An `error` event (`{"error":{"code","message"}}`) replaces `done` when
//! the answer fails after the stream started.

use serde::Serialize;

use crate::model::Event;

/// One SSE frame: `event: NAME\ndata: JSON\n\n` (JSON has no raw newlines).
pub fn frame(name: &str, data: &impl Serialize) -> Vec<u8> {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    format!("event: {name}\ndata: {json}\n\n").into_bytes()
}

/// A comment frame; clients ignore it.
pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// The bytes of `event`.
pub fn encode(event: &Event) -> Vec<u8> {
    match event {
        Event::Sources(s) => frame("sources", s),
        Event::Delta(text) => frame("delta", &serde_json::json!({ "text": text })),
        Event::Heartbeat => HEARTBEAT.to_vec(),
        Event::Done(answer) => frame("done", answer),
        Event::Error(body) => frame("error", body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ragspin_core::ErrorBody;

    #[test]
    fn encodes_deltas_as_named_events_with_escaped_json() {
        let bytes = encode(&Event::Delta("line one\nline \"two\"".into()));
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "event: delta\ndata: {\"text\":\"line one\\nline \\\"two\\\"\"}\n\n"
        );
    }

    #[test]
    fn encodes_heartbeats_as_comments_and_errors_as_error_events() {
        assert_eq!(encode(&Event::Heartbeat), b": keep-alive\n\n");
        let error = encode(&Event::Error(ErrorBody::new("upstream_error", "boom")));
        assert!(
            String::from_utf8(error)
                .unwrap()
                .starts_with("event: error\ndata: {\"error\":")
        );
    }
}
