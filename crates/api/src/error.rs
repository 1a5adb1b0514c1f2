//! The one error type of the HTTP boundary, answered as `{"detail", "code"}`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use protocol::rest::ErrorBody;
use protocol::{ErrorCode, Millis};
use std::fmt;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    /// For a limit: seconds until it lets the client in again, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// `rate_limited`, for a limit reached for `ms` more milliseconds: says when, in the
    /// detail and in `Retry-After`.
    pub fn rate_limited(what: &str, ms: Millis) -> ApiError {
        let seconds = ms.div_ceil(1000).max(1);
        ApiError::new(
            ErrorCode::RateLimited,
            format!("{what}, try again in {seconds} s"),
        )
        .retry_after(seconds)
    }

    /// The same error, telling the client when to try again (`Retry-After`, in seconds).
    pub fn retry_after(self, seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, detail)
    }

    /// A query string that does not parse (the app's and the WebSocket upgrade's).
    pub fn invalid_query(err: impl fmt::Display) -> ApiError {
        ApiError::invalid(format!("Invalid query string: {err}"))
    }

    /// Secrets never travel in URLs.
    pub fn password_in_url() -> ApiError {
        ApiError::new(ErrorCode::PasswordInUrl, "Never put a password in a URL")
    }

    pub fn room_not_found() -> ApiError {
        ApiError::new(ErrorCode::RoomNotFound, "Room not found")
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, detail)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds));
        }
        response.json(ErrorBody {
            detail: self.detail.clone(),
            code: self.code,
        })
    }
}

impl From<store::Error> for ApiError {
    /// As a refused command: one mapping (and one log line for an unavailable store).
    fn from(err: store::Error) -> ApiError {
        realtime::Refusal::from(err).into()
    }
}

impl From<realtime::Refusal> for ApiError {
    fn from(refusal: realtime::Refusal) -> ApiError {
        match (refusal.code, refusal.retry_after_ms) {
            // Over REST, every malformed input is one code (API.md).
            (ErrorCode::EmptyMessage | ErrorCode::MessageTooLong | ErrorCode::InvalidFrame, _) => {
                ApiError::invalid(refusal.detail)
            }
            (ErrorCode::RateLimited, Some(ms)) => ApiError::rate_limited(&refusal.detail, ms),
            // Redis answers again within a probe period or two.
            (ErrorCode::Unavailable, _) => {
                ApiError::new(ErrorCode::Unavailable, refusal.detail).retry_after(1)
            }
            // A room's own rate (or a cap the store counts): free again within a second or so.
            (code @ (ErrorCode::RateLimited | ErrorCode::RoomBusy), _) => {
                ApiError::new(code, refusal.detail).retry_after(1)
            }
            (code, _) => ApiError::new(code, refusal.detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripts rely on it (README, "For scripts"): every 429 and 503 says when to come back.
    #[test]
    fn every_refusal_that_is_a_429_or_a_503_carries_retry_after() {
        let codes = [
            ErrorCode::RateLimited,
            ErrorCode::RoomBusy,
            ErrorCode::Unavailable,
            ErrorCode::RoomFull,
            ErrorCode::InvalidFrame,
        ];
        for code in codes {
            for retry_after_ms in [None, Some(250)] {
                let refusal = realtime::Refusal {
                    code,
                    detail: "x".into(),
                    retry_after_ms,
                };
                let response = ApiError::from(refusal).error_response();
                let status = response.status().as_u16();
                let retry = response.headers().get(header::RETRY_AFTER);
                if status == 429 || status == 503 {
                    assert!(retry.is_some(), "{code:?} ({retry_after_ms:?})");
                }
            }
        }
    }
}
