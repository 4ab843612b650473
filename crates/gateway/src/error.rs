//! API errors: one JSON shape, one fixed status and a stable code each.
//!
//! ```json
//! {"error": {"code": "function_not_found", "message": "function `x` not found", "function": "x"}}
//! ```

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

/// An error answered by the API.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Map<String, Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Map::new(),
            retry_after: None,
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

impl From<weft_controller::Error> for ApiError {
    fn from(e: weft_controller::Error) -> Self {
        let mut api = ApiError::new(e.status(), e.code(), e.to_string());
        if let Some(f) = e.function() {
            api = api.with("function", f);
        }
        if let Some(i) = e.invocation() {
            api = api.with("invocation", i);
        }
        if let Some(c) = e.exit_code() {
            api = api.with("exit_code", c);
        }
        api.retry_after = e.retry_after();
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        body.extend(self.fields.clone());
        let mut resp = (self.status, Json(json!({ "error": body }))).into_response();
        let headers = resp.headers_mut();
        if let Some(s) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
        }
        headers.insert("x-weft-error", HeaderValue::from_static(self.code));
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
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
