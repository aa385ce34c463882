//! Finished RPCs by service, method and status code.
//!
//! [`RpcLayer`] wraps the gRPC server. A response that carries
//! `grpc-status` in its headers (a trailers-only answer: an error, a
//! refused call) is counted at once; otherwise the response body is
//! wrapped and the call is counted when its trailers go out, or as
//! `CANCELLED` when the body is dropped before them (the client went away).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bootwave_daemon::metrics::Exposition;
use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tonic::codegen::http;

/// The most (service, method, code) series kept; calls beyond are counted
/// under `service="other"`, so a client sending made-up paths cannot grow
/// the map without bound.
const MAX_SERIES: usize = 512;
/// The longest service or method name kept as a label.
const MAX_NAME: usize = 128;

/// Counts of finished RPCs.
#[derive(Debug, Default)]
pub struct RpcCounts {
    counts: Mutex<BTreeMap<(String, String, &'static str), u64>>,
}

impl RpcCounts {
    /// Counts one call of `path` (`/package.Service/Method`) that ended
    /// with `code`.
    pub fn record(&self, path: &str, code: Code) {
        let (service, method) = split_path(path);
        let mut counts = self.lock();
        let key = (service.to_owned(), method.to_owned(), code_name(code));
        if counts.len() >= MAX_SERIES && !counts.contains_key(&key) {
            *counts
                .entry(("other".into(), "other".into(), code_name(code)))
                .or_default() += 1;
            return;
        }
        *counts.entry(key).or_default() += 1;
    }

    /// Calls of `service`/`method` that ended with `code`.
    pub fn count(&self, service: &str, method: &str, code: Code) -> u64 {
        let key = (service.to_owned(), method.to_owned(), code_name(code));
        self.lock().get(&key).copied().unwrap_or(0)
    }

    /// A layer counting into `self`.
    pub fn layer(self: &Arc<Self>) -> RpcLayer {
        RpcLayer {
            counts: Arc::clone(self),
        }
    }

    /// Writes `bootwave_agent_rpc_total`.
    pub(super) fn render(&self, exp: &mut Exposition<'_>) {
        const NAME: &str = "bootwave_agent_rpc_total";
        exp.header(
            NAME,
            "Finished RPCs by service, method and status code.",
            bootwave_daemon::metrics::MetricKind::Counter,
        );
        for ((service, method, code), count) in self.lock().iter() {
            let labels = [
                ("service", &**service),
                ("method", &**method),
                ("code", code),
            ];
            exp.sample(NAME, &labels, *count);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String, &'static str), u64>> {
        // The map holds plain counts; a panic elsewhere cannot leave it
        // inconsistent.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `("package.Service", "Method")` of a gRPC path; `("unknown", "unknown")`
/// for anything else.
fn split_path(path: &str) -> (&str, &str) {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_NAME
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    };
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) if valid(service) && valid(method) => (service, method),
        _ => ("unknown", "unknown"),
    }
}

/// The canonical gRPC name of `code`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// A tower layer counting every call into [`RpcCounts`].
#[derive(Debug, Clone)]
pub struct RpcLayer {
    counts: Arc<RpcCounts>,
}

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            counts: Arc::clone(&self.counts),
        }
    }
}

/// The service [`RpcLayer`] makes.
#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    counts: Arc<RpcCounts>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RpcService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let pending = Pending {
            counts: Arc::clone(&self.counts),
            path: request.uri().path().to_owned(),
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let pending = match status_of(response.headers()) {
                Some(code) => {
                    pending.finish(code);
                    None
                }
                None => Some(pending),
            };
            Ok(response.map(|inner| CountedBody { inner, pending }))
        })
    }
}

/// A call whose status is not known yet.
#[derive(Debug)]
struct Pending {
    counts: Arc<RpcCounts>,
    path: String,
}

impl Pending {
    fn finish(self, code: Code) {
        self.counts.record(&self.path, code);
    }
}

/// A response body that counts its call when the trailers pass.
#[derive(Debug)]
pub struct CountedBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().and_then(status_of),
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Some(Code::Unknown),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(pending) = this.pending.take()
        {
            pending.finish(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for CountedBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_bounded_labels() {
        assert_eq!(
            split_path("/bootwave.v1.BootwaveService/PutHost"),
            ("bootwave.v1.BootwaveService", "PutHost")
        );
        assert_eq!(split_path("/no-method"), ("unknown", "unknown"));
        assert_eq!(split_path("/a/b\"c"), ("unknown", "unknown"));
        assert_eq!(
            split_path(&format!("/a/{}", "m".repeat(200))),
            ("unknown", "unknown")
        );
    }

    #[test]
    fn series_are_capped() {
        let counts = RpcCounts::default();
        for i in 0..MAX_SERIES + 10 {
            counts.record(&format!("/s/M{i}"), Code::Unimplemented);
        }
        counts.record("/s/M0", Code::Unimplemented);
        assert_eq!(counts.count("s", "M0", Code::Unimplemented), 2);
        assert_eq!(counts.count("other", "other", Code::Unimplemented), 10);
        assert_eq!(counts.lock().len(), MAX_SERIES + 1);
        let mut text = String::new();
        counts.render(&mut Exposition::new(&mut text));
        assert!(text.contains(
            "bootwave_agent_rpc_total{service=\"s\",method=\"M0\",code=\"UNIMPLEMENTED\"} 2\n"
        ));
    }
}
