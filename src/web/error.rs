//! What a dashboard request can fail with, and the error page each failure renders as.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tito_core::TitoError;

use super::html;

/// Why a dashboard page or action failed; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The database reported an error (its kind picks the status).
    #[error(transparent)]
    Tito(#[from] TitoError),
    /// A table, index, record, queue or dead letter that does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Malformed input: a query parameter or form field (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// An action this dashboard is not allowed to take (403).
    #[error("{0}")]
    Forbidden(String),
    /// The listener could not be bound or failed while serving.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

impl WebError {
    /// The HTTP status of this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) | WebError::Tito(TitoError::NotFound(_)) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_)
            | WebError::Tito(
                TitoError::InvalidCursor(_)
                | TitoError::InvalidArgument(_)
                | TitoError::InvalidQuery(_),
            ) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Tito(_) | WebError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            r#"<p class="error">{}</p><p><a href="javascript:history.back()">Back</a></p>"#,
            html::escape(&self.to_string())
        );
        let title = format!("{} {reason}", status.as_u16());
        // Error pages link with relative-to-root paths: the base path is not known here.
        (status, Html(html::page("", &title, &[], &body))).into_response()
    }
}
