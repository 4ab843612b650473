//! API errors: one JSON shape, one fixed status and a stable code each.
//!
//! ```json
//! {"error": {"code": "function_not_found", "message": "function `x` not found", "function": "x"}}
//! ```

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use weft_codes::Code;

/// An error answered by the API.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: Code,
    message: String,
    fields: Map<String, Value>,
    /// `Retry-After` when it is not the code's.
    retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `code`; its status and `Retry-After` are the code's.
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            fields: Map::new(),
            retry_after: code.retry_after(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

impl From<weft_controller::Error> for ApiError {
    fn from(e: weft_controller::Error) -> Self {
        ApiError::from(weft_router::Error::Controller(e))
    }
}

impl From<weft_router::Error> for ApiError {
    fn from(e: weft_router::Error) -> Self {
        let mut api = ApiError::new(e.code(), e.to_string());
        api.retry_after = e.retry_after();
        if let Some(f) = e.function() {
            api = api.with("function", f);
        }
        if let Some(field) = e.field() {
            api = api.with("field", field);
        }
        if let Some(i) = e.invocation() {
            api = api.with("invocation", i);
        }
        if let Some(c) = e.exit_code() {
            api = api.with("exit_code", c);
        }
        api
    }
}

impl From<weft_workflow::Error> for ApiError {
    fn from(e: weft_workflow::Error) -> Self {
        let mut api = ApiError::new(e.code(), e.to_string());
        if let Some(field) = e.field() {
            api = api.with("field", field);
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code.as_str()));
        body.insert("message".into(), json!(self.message));
        body.extend(self.fields.clone());
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(json!({ "error": body }))).into_response();
        let headers = resp.headers_mut();
        if let Some(s) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
        }
        headers.insert("x-weft-error", HeaderValue::from_static(self.code.as_str()));
        if let Some(Value::String(inv)) = self.fields.get("invocation")
            && let Ok(v) = HeaderValue::from_str(inv)
        {
            headers.insert("x-weft-invocation-id", v);
        }
        if let Some(Value::Number(c)) = self.fields.get("exit_code")
            && let Ok(v) = HeaderValue::from_str(&c.to_string())
        {
            headers.insert("x-weft-exit-code", v);
        }
        if self.code == Code::Unauthorized {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
