//! The request handling of the fake, as a pure function of the state and
//! one request ([`handle`]); `server` only moves bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::{Fault, Faults, Route};
use crate::model;
use crate::recording::{OnMiss, Recording};

/// api-versions the fake accepts on the deployments surface.
pub const API_VERSIONS: &[&str] = &[
    "2023-05-15",
    "2024-02-01",
    "2024-06-01",
    "2024-10-21",
    "2024-12-01-preview",
    "2025-01-01-preview",
    "2025-03-01-preview",
    "2025-04-01-preview",
];

/// The first api-version that accepts the `developer` role.
const DEVELOPER_ROLE_SINCE: &str = "2024-12-01-preview";

/// Most inputs in one embeddings request.
pub const MAX_INPUTS: usize = 2048;
/// Most tokens (estimated like the client) in one input.
pub const MAX_INPUT_TOKENS: u32 = 8192;

/// What a deployment serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentKind {
    /// Embeddings of `dimensions` floats by default.
    Embeddings {
        /// Native vector length.
        dimensions: usize,
    },
    /// Chat completions.
    Chat,
}

/// One deployment of the fake resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The name in URLs (or `model` in `/v1` bodies).
    pub name: String,
    /// The model behind it (decides whether `dimensions` is accepted).
    pub model: String,
    /// What it serves.
    pub kind: DeploymentKind,
}

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The key callers must send (`api-key: K` or `Authorization: Bearer K`).
    pub api_key: String,
    /// The deployments; the default has `text-embedding-3-small` (1536),
    /// `text-embedding-3-large` (3072), `text-embedding-ada-002` (1536),
    /// `gpt-4o-mini` and `gpt-4o`, each deployed under its model's name.
    pub deployments: Vec<Deployment>,
    /// List embeddings in reverse index order (a client must match by
    /// `index`, not by position).
    pub reverse_embedding_order: bool,
    /// Recorded embeddings served for the recording's deployment (see
    /// [`crate::recording`] and [`FakeOptions::with_recording`]).
    pub recording: Option<Arc<Recording>>,
    /// What to answer for a text the recording lacks.
    pub on_recording_miss: OnMiss,
    /// Remember every text embedded ([`State::embedded_texts`]): how the
    /// evaluation lists the texts a recording needs.
    pub keep_inputs: bool,
}

impl FakeOptions {
    /// Serve `recording` under its deployment name (replacing a deployment
    /// of that name), with `dimensions` native.
    pub fn with_recording(mut self, recording: Recording) -> Self {
        self.deployments.retain(|d| d.name != recording.deployment);
        self.deployments.push(Deployment {
            name: recording.deployment.clone(),
            model: recording.model.clone(),
            kind: DeploymentKind::Embeddings {
                dimensions: recording.dimensions,
            },
        });
        self.recording = Some(Arc::new(recording));
        self
    }
}

/// The default key.
pub const DEFAULT_API_KEY: &str = "fake-azure-key";

impl Default for FakeOptions {
    fn default() -> Self {
        let embeddings = |name: &str, dimensions| Deployment {
            name: name.into(),
            model: name.into(),
            kind: DeploymentKind::Embeddings { dimensions },
        };
        let chat = |name: &str| Deployment {
            name: name.into(),
            model: name.into(),
            kind: DeploymentKind::Chat,
        };
        Self {
            api_key: DEFAULT_API_KEY.into(),
            deployments: vec![
                embeddings("text-embedding-3-small", 1536),
                embeddings("text-embedding-3-large", 3072),
                embeddings("text-embedding-ada-002", 1536),
                chat("gpt-4o-mini"),
                chat("gpt-4o"),
            ],
            reverse_embedding_order: false,
            recording: None,
            on_recording_miss: OnMiss::default(),
            keep_inputs: false,
        }
    }
}

/// Counters since start (or the last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls per model route (`embeddings`, `chat`), rejected ones included.
    pub calls: BTreeMap<String, u64>,
    /// Texts embedded in successful embeddings answers.
    pub embedded_inputs: u64,
    /// Streamed chat answers sent.
    pub chat_streams: u64,
    /// Calls a fault acted on.
    pub faults_applied: u64,
    /// Texts asked of the recording's deployment that it does not hold.
    #[serde(default)]
    pub recording_misses: u64,
    /// TCP connections accepted (a client that keeps connections alive
    /// makes fewer than its calls).
    #[serde(default)]
    pub connections: u64,
}

impl Stats {
    /// Calls on `route`.
    pub fn calls(&self, route: Route) -> u64 {
        self.calls.get(route.name()).copied().unwrap_or(0)
    }
}

/// Shared state of one fake.
#[derive(Debug)]
pub struct State {
    options: FakeOptions,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    faults: Faults,
    stats: Stats,
    next_id: u64,
    inputs: BTreeSet<String>,
}

impl State {
    /// A fresh state.
    pub fn new(options: FakeOptions) -> Self {
        Self {
            options,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The options.
    pub fn options(&self) -> &FakeOptions {
        &self.options
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Count one accepted connection.
    pub fn connection_accepted(&self) {
        self.lock().stats.connections += 1;
    }

    /// Every text embedded since start or the last reset, sorted (only with
    /// [`FakeOptions::keep_inputs`]).
    pub fn embedded_texts(&self) -> Vec<String> {
        self.lock().inputs.iter().cloned().collect()
    }

    /// Install a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        fault.validate()?;
        self.lock().faults.add(fault);
        Ok(())
    }

    /// The installed faults.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.list()
    }

    /// Forget faults and counters.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.faults.clear();
        inner.stats = Stats::default();
        inner.inputs.clear();
    }
}

/// A request, as the handler sees it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Uppercase method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .as_deref()?
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A reply body.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Value),
    /// `text/event-stream`: each item is one whole event (`data: ...\n\n`),
    /// written as its own body frame.
    Sse(Vec<String>),
}

/// What to answer, after waiting `delay_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers (content-type is implied by the body).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: ReplyBody,
    /// Wait this long before answering.
    pub delay_ms: u64,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(body),
            delay_ms: 0,
        }
    }
}

/// Which URL surface a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/openai/deployments/{d}/...?api-version=`.
    Deployments,
    /// `/openai/v1/...` (Azure's v1) — model in the body, Azure error codes.
    AzureV1,
    /// `/v1/...` (OpenAI-compatible) — model in the body, OpenAI error codes.
    OpenAi,
}

fn azure_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

fn openai_error(status: u16, code: Option<&str>, message: &str, param: Option<&str>) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}),
    )
}

fn invalid(message: &str) -> Reply {
    openai_error(400, None, message, None)
}

fn resource_not_found() -> Reply {
    azure_error(404, "404", "Resource not found")
}

/// Answer one request.
pub fn handle(state: &State, request: &Request) -> Reply {
    let path = request.path.as_str();
    if let Some(admin) = path.strip_prefix("/_fake/") {
        return admin_route(state, admin, request);
    }
    let (surface, deployment, route) = match split_model_path(path) {
        Some(parts) => parts,
        None => return resource_not_found(),
    };
    *state
        .lock()
        .stats
        .calls
        .entry(route.name().to_owned())
        .or_default() += 1;
    if request.method != "POST" {
        return azure_error(405, "405", "Method not allowed; use POST");
    }
    let api_version = request.query_param("api-version");
    if surface == Surface::Deployments && api_version.is_none_or(str::is_empty) {
        return resource_not_found();
    }
    if !authorized(state, request) {
        return match surface {
            Surface::OpenAi => openai_error(
                401,
                Some("invalid_api_key"),
                "Incorrect API key provided.",
                None,
            ),
            _ => azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
                 provide a valid key for an active subscription and use a correct regional API \
                 endpoint for your resource.",
            ),
        };
    }
    let api_version = api_version.unwrap_or(API_VERSIONS[API_VERSIONS.len() - 1]);
    if surface == Surface::Deployments && !API_VERSIONS.contains(&api_version) {
        return azure_error(400, "BadRequest", "API version not supported");
    }
    let body: serde_json::Map<String, Value> = match serde_json::from_slice(&request.body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return invalid("The request body must be a JSON object."),
        Err(e) => {
            return invalid(&format!(
                "We could not parse the JSON body of your request. ({e})"
            ));
        }
    };
    let name = match deployment {
        Some(name) => name.to_owned(),
        None => match body.get("model").and_then(Value::as_str) {
            Some(model) => model.to_owned(),
            None => {
                return openai_error(
                    400,
                    None,
                    "you must provide a model parameter",
                    Some("model"),
                );
            }
        },
    };
    let Some(deployment) = state.options.deployments.iter().find(|d| d.name == name) else {
        return match surface {
            Surface::OpenAi => openai_error(
                404,
                Some("model_not_found"),
                &format!("The model `{name}` does not exist or you do not have access to it."),
                None,
            ),
            _ => azure_error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the \
                 deployment within the last 5 minutes, please wait a moment and try again.",
            ),
        };
    };
    let kind_ok = matches!(
        (&deployment.kind, route),
        (DeploymentKind::Embeddings { .. }, Route::Embeddings)
            | (DeploymentKind::Chat, Route::Chat)
    );
    if !kind_ok {
        return azure_error(
            400,
            "OperationNotSupported",
            &format!(
                "The {} operation does not work with the specified model, {}. Please choose \
                 different model and try again.",
                route.name(),
                deployment.model
            ),
        );
    }
    let action = {
        let mut inner = state.lock();
        let action = inner.faults.on_call(route);
        if action.is_some() {
            inner.stats.faults_applied += 1;
        }
        action
    };
    let delay_ms = action.as_ref().map_or(0, |a| a.delay_ms);
    let mut reply = match action.and_then(|a| a.fail) {
        Some(fault) => fault_reply(&fault, route, api_version),
        None => match route {
            Route::Embeddings => embeddings(state, deployment, &body),
            Route::Chat => chat(state, surface, deployment, api_version, &body),
        },
    };
    reply.delay_ms = delay_ms;
    reply
}

fn split_model_path(path: &str) -> Option<(Surface, Option<&str>, Route)> {
    let route_of = |rest: &str| match rest {
        "embeddings" => Some(Route::Embeddings),
        "chat/completions" => Some(Route::Chat),
        _ => None,
    };
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (deployment, operation) = rest.split_once('/')?;
        if deployment.is_empty() {
            return None;
        }
        return Some((Surface::Deployments, Some(deployment), route_of(operation)?));
    }
    if let Some(rest) = path.strip_prefix("/openai/v1/") {
        return Some((Surface::AzureV1, None, route_of(rest)?));
    }
    if let Some(rest) = path.strip_prefix("/v1/") {
        return Some((Surface::OpenAi, None, route_of(rest)?));
    }
    None
}

fn authorized(state: &State, request: &Request) -> bool {
    let key = state.options.api_key.as_str();
    request.header("api-key") == Some(key)
        || request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            == Some(key)
}

fn fault_reply(fault: &Fault, route: Route, api_version: &str) -> Reply {
    let status = fault.status.unwrap_or(500);
    let (code, message) = match status {
        429 => (
            "429".to_owned(),
            format!(
                "Requests to the {} Operation under Azure OpenAI API version {api_version} have \
                 exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry \
                 after {} second(s).",
                match route {
                    Route::Embeddings => "Embeddings_Create",
                    Route::Chat => "ChatCompletions_Create",
                },
                fault.retry_after_s.unwrap_or(1)
            ),
        ),
        500 => (
            "InternalServerError".to_owned(),
            "The server had an error while processing your request. Sorry about that!".to_owned(),
        ),
        503 => (
            "ServiceUnavailable".to_owned(),
            "The service is temporarily unable to process your request. Please try again later."
                .to_owned(),
        ),
        other => (other.to_string(), format!("Injected fault ({other}).")),
    };
    let mut reply = azure_error(
        status,
        fault.code.as_deref().unwrap_or(&code),
        fault.message.as_deref().unwrap_or(&message),
    );
    if let Some(ms) = fault.retry_after_ms {
        reply
            .headers
            .push(("retry-after-ms".into(), ms.to_string()));
    }
    if let Some(s) = fault.retry_after_s {
        reply.headers.push(("retry-after".into(), s.to_string()));
    }
    reply
}

const EMBEDDING_ARGS: &[&str] = &["input", "model", "dimensions", "encoding_format", "user"];

fn unknown_argument(body: &serde_json::Map<String, Value>, allowed: &[&str]) -> Option<Reply> {
    body.keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(|k| invalid(&format!("Unrecognized request argument supplied: {k}")))
}

fn embeddings(
    state: &State,
    deployment: &Deployment,
    body: &serde_json::Map<String, Value>,
) -> Reply {
    if let Some(reply) = unknown_argument(body, EMBEDDING_ARGS) {
        return reply;
    }
    let DeploymentKind::Embeddings { dimensions: native } = deployment.kind else {
        return invalid("not an embeddings deployment");
    };
    let inputs: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) => texts.push(s),
                    None => {
                        return invalid(
                            "'$.input' is invalid: the fake accepts a string or an array of strings.",
                        );
                    }
                }
            }
            texts
        }
        Some(_) => return invalid("'$.input' is invalid. Please check the API reference."),
        None => return openai_error(400, None, "'input' is a required property", Some("input")),
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return invalid(&format!(
            "'$.input' must contain 1 to {MAX_INPUTS} items; it has {}.",
            inputs.len()
        ));
    }
    if let Some(i) = inputs.iter().position(|s| s.is_empty()) {
        return invalid(&format!("'$.input[{i}]' is invalid: it must not be empty."));
    }
    if let Some((i, tokens)) = inputs
        .iter()
        .map(|s| model::estimate_tokens(s))
        .enumerate()
        .find(|(_, t)| *t > MAX_INPUT_TOKENS)
    {
        return invalid(&format!(
            "This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you \
             requested {tokens} tokens in input {i}. Please reduce your prompt."
        ));
    }
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => native,
        Some(value) => {
            if !deployment.model.starts_with("text-embedding-3") {
                return invalid("This model does not support specifying dimensions.");
            }
            match value.as_u64().and_then(|d| usize::try_from(d).ok()) {
                Some(d) if (1..=native).contains(&d) => d,
                _ => {
                    return invalid(&format!(
                        "'$.dimensions' must be an integer from 1 to {native}."
                    ));
                }
            }
        }
    };
    // As the service: "float" (the default) answers arrays of numbers,
    // "base64" the little-endian f32 bytes of each vector in base64.
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return invalid("'$.encoding_format' must be one of 'float', 'base64'.");
        }
    };
    let recording = state
        .options
        .recording
        .as_deref()
        .filter(|r| r.deployment == deployment.name);
    let vectors = match recording {
        Some(recording) => match replay(state, recording, &inputs, dimensions) {
            Ok(vectors) => vectors,
            Err(reply) => return reply,
        },
        None => inputs
            .iter()
            .map(|text| model::embed(text, dimensions))
            .collect(),
    };
    let mut data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                use base64::Engine as _;
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    if state.options.reverse_embedding_order {
        data.reverse();
    }
    let tokens: u32 = inputs.iter().map(|s| model::estimate_tokens(s)).sum();
    {
        let mut inner = state.lock();
        inner.stats.embedded_inputs += inputs.len() as u64;
        if state.options.keep_inputs {
            inner.inputs.extend(inputs.iter().map(|s| (*s).to_owned()));
        }
    }
    Reply::json(
        200,
        json!({"object": "list", "data": data, "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

/// The recorded vectors of `inputs`; misses are counted, then answered by
/// [`FakeOptions::on_recording_miss`].
fn replay(
    state: &State,
    recording: &Recording,
    inputs: &[&str],
    dimensions: usize,
) -> Result<Vec<Vec<f32>>, Reply> {
    if dimensions != recording.dimensions {
        return Err(invalid(&format!(
            "The recording {} holds {}-dimensional vectors; {dimensions} were asked for.",
            recording.origin, recording.dimensions
        )));
    }
    let found: Vec<Option<&[f32]>> = inputs.iter().map(|t| recording.get(t)).collect();
    let misses: Vec<&str> = inputs
        .iter()
        .zip(&found)
        .filter(|(_, v)| v.is_none())
        .map(|(t, _)| *t)
        .collect();
    if !misses.is_empty() {
        {
            let mut inner = state.lock();
            inner.stats.recording_misses += misses.len() as u64;
            if state.options.keep_inputs {
                inner.inputs.extend(misses.iter().map(|s| (*s).to_owned()));
            }
        }
        if state.options.on_recording_miss == OnMiss::Error {
            let preview: String = misses[0].chars().take(60).collect();
            return Err(azure_error(
                400,
                "RecordingMiss",
                &format!(
                    "{} input(s) are not in the embeddings recording {}; the first has SHA-256 {} \
                     and begins {preview:?}. Re-record (tests/fixtures/eval/README.md).",
                    misses.len(),
                    recording.origin,
                    Recording::key(misses[0]),
                ),
            ));
        }
    }
    Ok(inputs
        .iter()
        .zip(found)
        .map(|(text, vector)| match vector {
            Some(v) => v.to_vec(),
            None => model::embed(text, dimensions),
        })
        .collect())
}

const CHAT_ARGS: &[&str] = &[
    "messages",
    "model",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
];

/// A prompt containing this is refused with 400 `content_filter`.
pub const PROMPT_FILTER_MARKER: &str = "FAKE_CONTENT_FILTER_PROMPT";
/// A prompt containing this gets an answer cut with `finish_reason: content_filter`.
pub const COMPLETION_FILTER_MARKER: &str = "FAKE_CONTENT_FILTER_COMPLETION";

fn safe_filter_results() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

struct ChatArgs {
    messages: Vec<model::Message>,
    n: u64,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u64>,
    stop: Vec<String>,
}

fn parse_chat(body: &serde_json::Map<String, Value>, api_version: &str) -> Result<ChatArgs, Reply> {
    if let Some(reply) = unknown_argument(body, CHAT_ARGS) {
        return Err(reply);
    }
    let Some(Value::Array(raw)) = body.get("messages") else {
        return Err(openai_error(
            400,
            None,
            "'messages' is a required property",
            Some("messages"),
        ));
    };
    if raw.is_empty() {
        return Err(invalid("'$.messages' must contain at least one message."));
    }
    let mut messages = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let allowed = match role {
            "system" | "user" | "assistant" | "tool" => true,
            "developer" => api_version >= DEVELOPER_ROLE_SINCE,
            _ => false,
        };
        if !allowed {
            return Err(invalid(&format!(
                "'$.messages[{i}].role' is invalid: {role:?} is not supported in api-version {api_version}."
            )));
        }
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            None | Some(Value::Null) if role == "assistant" => String::new(),
            _ => {
                return Err(invalid(&format!("'$.messages[{i}].content' is invalid.")));
            }
        };
        messages.push(model::Message {
            role: role.to_owned(),
            content,
        });
    }
    let number = |name: &str, min: f64, max: f64| -> Result<Option<f64>, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                _ => Err(invalid(&format!(
                    "'$.{name}' must be a number from {min} to {max}."
                ))),
            },
        }
    };
    number("temperature", 0.0, 2.0)?;
    number("top_p", 0.0, 1.0)?;
    number("presence_penalty", -2.0, 2.0)?;
    number("frequency_penalty", -2.0, 2.0)?;
    let n = match body.get("n") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=128).contains(&n) => n,
            _ => return Err(invalid("'$.n' must be an integer from 1 to 128.")),
        },
    };
    let max_tokens = match body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
    {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(m) if m >= 1 => Some(m),
            _ => return Err(invalid("'$.max_tokens' must be a positive integer.")),
        },
    };
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 && items.iter().all(Value::is_string) => {
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        }
        Some(_) => return Err(invalid("'$.stop' must be a string or up to 4 strings.")),
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("'$.stream' must be a boolean.")),
    };
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(_) if !stream => {
            return Err(openai_error(
                400,
                None,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                Some("stream_options"),
            ));
        }
        Some(Value::Object(options)) => {
            if let Some(k) = options.keys().find(|k| k.as_str() != "include_usage") {
                return Err(invalid(&format!(
                    "Unrecognized stream_options argument: {k}"
                )));
            }
            match options.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(invalid(
                        "'$.stream_options.include_usage' must be a boolean.",
                    ));
                }
            }
        }
        Some(_) => return Err(invalid("'$.stream_options' must be an object.")),
    };
    Ok(ChatArgs {
        messages,
        n,
        stream,
        include_usage,
        max_tokens,
        stop,
    })
}

fn chat(
    state: &State,
    surface: Surface,
    deployment: &Deployment,
    api_version: &str,
    body: &serde_json::Map<String, Value>,
) -> Reply {
    let args = match parse_chat(body, api_version) {
        Ok(args) => args,
        Err(reply) => return reply,
    };
    let prompt: String = args
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    if prompt.contains(PROMPT_FILTER_MARKER) {
        return Reply::json(
            400,
            json!({"error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                    "hate": {"filtered": false, "severity": "safe"},
                    "self_harm": {"filtered": false, "severity": "safe"},
                    "sexual": {"filtered": false, "severity": "safe"},
                    "violence": {"filtered": true, "severity": "high"}}}
            }}),
        );
    }
    let mut content = model::answer(&args.messages);
    let mut finish = "stop";
    if let Some(cut) = args
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| content.find(s.as_str()))
        .min()
    {
        content.truncate(cut);
    }
    if let Some(max) = args.max_tokens
        && u64::from(model::estimate_tokens(&content)) > max
    {
        let mut end = usize::try_from(max.saturating_mul(4))
            .unwrap_or(usize::MAX)
            .min(content.len());
        while !content.is_char_boundary(end) {
            end -= 1;
        }
        content.truncate(end);
        finish = "length";
    }
    if prompt.contains(COMPLETION_FILTER_MARKER) {
        content = content.split(' ').next().unwrap_or_default().to_owned();
        finish = "content_filter";
    }
    let prompt_tokens = model::estimate_tokens(&prompt);
    let completion_tokens = if content.is_empty() {
        0
    } else {
        model::estimate_tokens(&content)
    };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens});
    let id = {
        let mut inner = state.lock();
        inner.next_id += 1;
        if args.stream {
            inner.stats.chat_streams += 1;
        }
        format!("chatcmpl-fake-{}", inner.next_id)
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let azure = surface != Surface::OpenAi;
    if !args.stream {
        let choices: Vec<Value> = (0..args.n)
            .map(|index| {
                let mut choice = json!({"index": index, "finish_reason": finish, "logprobs": null,
                    "message": {"role": "assistant", "content": content, "refusal": null}});
                if azure {
                    choice["content_filter_results"] = safe_filter_results();
                }
                choice
            })
            .collect();
        let mut answer = json!({"id": id, "object": "chat.completion", "created": created,
            "model": deployment.model, "system_fingerprint": "fp_fake", "choices": choices,
            "usage": usage});
        if azure {
            answer["prompt_filter_results"] =
                json!([{"prompt_index": 0, "content_filter_results": safe_filter_results()}]);
        }
        return Reply::json(200, answer);
    }
    let chunk = |choices: Value, usage: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": deployment.model, "system_fingerprint": "fp_fake", "choices": choices,
            "usage": usage})
    };
    let mut events: Vec<Value> = Vec::new();
    if azure {
        events.push(json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": safe_filter_results()}]}));
    }
    let with_filter = |mut choice: Value| {
        if azure {
            choice["content_filter_results"] = safe_filter_results();
        }
        choice
    };
    for index in 0..args.n {
        events.push(chunk(
            json!([with_filter(
                json!({"index": index, "finish_reason": null, "logprobs": null,
                "delta": {"role": "assistant", "content": "", "refusal": null}})
            )]),
            Value::Null,
        ));
        for piece in pieces(&content) {
            events.push(chunk(
                json!([with_filter(
                    json!({"index": index, "finish_reason": null, "logprobs": null,
                    "delta": {"content": piece}})
                )]),
                Value::Null,
            ));
        }
        events.push(chunk(
            json!([with_filter(
                json!({"index": index, "finish_reason": finish, "logprobs": null, "delta": {}})
            )]),
            Value::Null,
        ));
    }
    if args.include_usage {
        events.push(chunk(json!([]), usage));
    }
    let mut sse: Vec<String> = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    sse.push("data: [DONE]\n\n".to_owned());
    Reply {
        status: 200,
        headers: Vec::new(),
        body: ReplyBody::Sse(sse),
        delay_ms: 0,
    }
}

/// Split an answer into streaming pieces: each word with the space before it.
fn pieces(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, word) in content.split(' ').enumerate() {
        if i == 0 {
            if !word.is_empty() {
                out.push(word.to_owned());
            }
        } else {
            out.push(format!(" {word}"));
        }
    }
    out
}

fn admin_route(state: &State, admin: &str, request: &Request) -> Reply {
    match (request.method.as_str(), admin) {
        ("GET", "stats") => Reply::json(200, json!(state.stats())),
        ("GET", "faults") => Reply::json(200, json!(state.faults())),
        ("POST", "faults") => {
            let faults: Vec<Fault> = match serde_json::from_slice::<Value>(&request.body) {
                Ok(Value::Array(items)) => match items
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<_, _>>()
                {
                    Ok(faults) => faults,
                    Err(e) => {
                        return azure_error(400, "BadRequest", &format!("invalid fault: {e}"));
                    }
                },
                Ok(one) => match serde_json::from_value(one) {
                    Ok(fault) => vec![fault],
                    Err(e) => {
                        return azure_error(400, "BadRequest", &format!("invalid fault: {e}"));
                    }
                },
                Err(e) => return azure_error(400, "BadRequest", &format!("invalid JSON: {e}")),
            };
            if let Some(e) = faults.iter().find_map(|f| f.validate().err()) {
                return azure_error(400, "BadRequest", &format!("invalid fault: {e}"));
            }
            for fault in faults {
                // Validated above.
                _ = state.inject(fault);
            }
            Reply::json(200, json!({"faults": state.faults().len()}))
        }
        ("POST", "reset") => {
            state.reset();
            Reply::json(200, json!({"reset": true}))
        }
        _ => resource_not_found(),
    }
}
