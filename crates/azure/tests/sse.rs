//! The SSE layers against real-shaped Azure streams, split every way.

use ragspin_azure::{FinishReason, SseDecoder, SseMessage, SseParser, StreamEvent};
use ragspin_core::{Error, Usage};

const AZURE_STREAM: &str = include_str!("fixtures/azure-chat-stream.sse");

fn parse_in_pieces(body: &[u8], pieces: &[usize]) -> Vec<StreamEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &end in pieces {
        events.extend(parser.push(&body[start..end]));
        start = end;
    }
    events.extend(parser.push(&body[start..]));
    events.extend(parser.finish());
    events
}

fn expected_azure_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Content("The café".into()),
        StreamEvent::Content(" opens at 8 [1].".into()),
        StreamEvent::Finish(FinishReason::Stop),
        StreamEvent::Usage(Usage {
            prompt_tokens: 41,
            completion_tokens: 9,
        }),
        StreamEvent::Done,
    ]
}

#[test]
fn parses_an_azure_stream_with_its_empty_choices_first_chunk_and_usage_chunk() {
    let events = parse_in_pieces(AZURE_STREAM.as_bytes(), &[]);
    assert_eq!(events, expected_azure_events());
}

#[test]
fn gives_the_same_events_whatever_two_pieces_the_body_arrives_in() {
    let body = AZURE_STREAM.as_bytes();
    for split in 0..=body.len() {
        assert_eq!(
            parse_in_pieces(body, &[split]),
            expected_azure_events(),
            "split at byte {split}"
        );
    }
}

#[test]
fn gives_the_same_events_when_the_body_arrives_one_byte_at_a_time() {
    let body = AZURE_STREAM.as_bytes();
    let every_byte: Vec<usize> = (1..body.len()).collect();
    assert_eq!(parse_in_pieces(body, &every_byte), expected_azure_events());
}

#[test]
fn accepts_crlf_and_lone_cr_line_ends_even_when_crlf_is_split() {
    let crlf = AZURE_STREAM.replace('\n', "\r\n");
    let body = crlf.as_bytes();
    for split in 0..=body.len() {
        assert_eq!(
            parse_in_pieces(body, &[split]),
            expected_azure_events(),
            "crlf split {split}"
        );
    }
    let cr = AZURE_STREAM.replace('\n', "\r");
    let body = cr.as_bytes();
    for split in (0..=body.len()).step_by(7) {
        assert_eq!(
            parse_in_pieces(body, &[split]),
            expected_azure_events(),
            "cr split {split}"
        );
    }
}

#[test]
fn joins_data_lines_and_skips_comments_ids_and_retry_fields() {
    let mut decoder = SseDecoder::new();
    let messages = decoder.push(
        b": keep-alive\nid: 7\nretry: 1000\nevent: update\ndata: first\ndata:second\ndata\n\n",
    );
    assert_eq!(
        messages,
        [SseMessage {
            event: Some("update".into()),
            data: "first\nsecond\n".into()
        }]
    );
    assert!(decoder.push(b": only a comment\n\n").is_empty());
}

#[test]
fn strips_a_leading_byte_order_mark() {
    let mut decoder = SseDecoder::new();
    let messages = decoder.push("\u{feff}data: x\n\n".as_bytes());
    assert_eq!(messages[0].data, "x");
}

#[test]
fn dispatches_a_last_event_that_lacks_its_blank_line_when_the_body_ends() {
    let mut parser = SseParser::new();
    let body =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]";
    let mut events = parser.push(body);
    assert_eq!(events, [StreamEvent::Content("hi".into())]);
    events = parser.finish();
    assert_eq!(events, [StreamEvent::Done]);
}

#[test]
fn reports_a_content_filter_finish() {
    let body = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Partial\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\",",
        "\"content_filter_results\":{\"violence\":{\"filtered\":true,\"severity\":\"medium\"}}}]}\n\n",
        "data: [DONE]\n\n"
    );
    let events = parse_in_pieces(body.as_bytes(), &[]);
    assert_eq!(
        events,
        [
            StreamEvent::Content("Partial".into()),
            StreamEvent::Finish(FinishReason::ContentFilter),
            StreamEvent::Done
        ]
    );
}

#[test]
fn follows_only_choice_zero_and_keeps_unknown_finish_reasons() {
    let body = concat!(
        "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}},",
        "{\"index\":0,\"delta\":{\"content\":\"mine\"},\"finish_reason\":\"eos\"}]}\n\n",
        "data: [DONE]\n\n"
    );
    assert_eq!(
        parse_in_pieces(body.as_bytes(), &[]),
        [
            StreamEvent::Content("mine".into()),
            StreamEvent::Finish(FinishReason::Other("eos".into())),
            StreamEvent::Done
        ]
    );
}

#[test]
fn ignores_everything_after_done() {
    let mut parser = SseParser::new();
    let events = parser.push(
        b"data: [DONE]\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n",
    );
    assert_eq!(events, [StreamEvent::Done]);
    assert!(parser.is_done());
    assert!(parser.push(b"data: garbage\n\n").is_empty());
    assert!(parser.finish().is_empty());
}

#[test]
fn fails_on_a_chunk_that_is_not_json_and_then_stays_silent() {
    let mut parser = SseParser::new();
    let events = parser.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {oops\n\ndata: [DONE]\n\n");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0], StreamEvent::Content("a".into()));
    assert!(
        matches!(&events[1], StreamEvent::Failed(Error::Upstream(m)) if m.contains("not valid JSON"))
    );
    assert!(parser.finish().is_empty());
}

#[test]
fn fails_on_an_error_object_in_the_stream() {
    let events = parse_in_pieces(
        b"data: {\"error\":{\"code\":\"server_error\",\"message\":\"The server had an error\"}}\n\n",
        &[],
    );
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0], StreamEvent::Failed(Error::Upstream(m)) if m.contains("server_error"))
    );
}

#[test]
fn a_stream_that_ends_without_done_fails() {
    let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cut\"}}]}\n\n";
    let events = parse_in_pieces(body, &[]);
    assert_eq!(events[0], StreamEvent::Content("cut".into()));
    assert!(matches!(&events[1], StreamEvent::Failed(Error::Upstream(m)) if m.contains("[DONE]")));
}

#[test]
fn reassembles_a_character_split_between_pieces() {
    let body =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"日本\"}}]}\n\ndata: [DONE]\n\n";
    let bytes = body.as_bytes();
    let inside = body.find('日').unwrap() + 1;
    assert_eq!(
        parse_in_pieces(bytes, &[inside, inside + 1, inside + 3]),
        [StreamEvent::Content("日本".into()), StreamEvent::Done]
    );
}
