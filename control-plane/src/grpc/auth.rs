//! Bearer-token authentication for every RPC but health.
//!
//! When `SWITCHBOARD_API_TOKEN` is set, requests must carry
//! `authorization: Bearer <token>`. The comparison runs in constant time and the token
//! is never logged.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// A tonic interceptor; `None` lets every request through.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("enabled", &self.expected.is_some())
            .finish()
    }
}

impl BearerAuth {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
        }
    }

    pub fn check<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(presented.ct_eq(expected)) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "missing or invalid bearer token in the authorization header",
            ))
        }
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let auth = BearerAuth::new(Some("s3cret"));
        assert!(auth.check(with_header("Bearer s3cret")).is_ok());
        for wrong in ["Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "s3cret"] {
            let status = auth.check(with_header(wrong)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains("s3cret"));
        }
        assert!(auth.check(Request::new(())).is_err());
        assert!(BearerAuth::new(None).check(Request::new(())).is_ok());
    }
}
