//! A resolver that consults a hook (generated content) before a fallback.

use bootwave_protocol::tftp::{ResolveRequest, Resolved, Resolver};

/// Asks `hook` first and falls back to another resolver when it declines.
///
/// The hook sees the whole request (path, client address, MAC) and answers
/// `Some` to serve or refuse the name itself, e.g. a per-host iPXE script
/// built from the lease table, or `None` to let the fallback (usually an
/// `Arc<FileStore>`) answer. It runs on the shard's hot path: it must not
/// block.
#[derive(Clone)]
pub struct DynamicResolver<F, R> {
    hook: F,
    fallback: R,
}

impl<F, R> DynamicResolver<F, R>
where
    F: Fn(&ResolveRequest<'_>) -> Option<Resolved> + Send + Sync,
    R: Resolver,
{
    /// A resolver asking `hook`, then `fallback`.
    pub fn new(hook: F, fallback: R) -> Self {
        Self { hook, fallback }
    }

    /// The resolver consulted when the hook declines.
    pub fn fallback(&self) -> &R {
        &self.fallback
    }
}

impl<F, R> Resolver for DynamicResolver<F, R>
where
    F: Fn(&ResolveRequest<'_>) -> Option<Resolved> + Send + Sync,
    R: Resolver,
{
    fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
        (self.hook)(request).unwrap_or_else(|| self.fallback.resolve(request))
    }
}

impl<F, R: std::fmt::Debug> std::fmt::Debug for DynamicResolver<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicResolver")
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;

    use super::*;

    /// A fallback that serves every name as its own bytes.
    #[derive(Debug)]
    struct Echo;

    impl Resolver for Echo {
        fn resolve(&self, request: &ResolveRequest<'_>) -> Resolved {
            Resolved::File(Arc::new(request.path.as_bytes().to_vec()))
        }
    }

    fn request(path: &str, mac: Option<[u8; 6]>) -> ResolveRequest<'_> {
        ResolveRequest {
            path,
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, 2000)),
            mac,
        }
    }

    fn bytes(resolved: Resolved) -> Vec<u8> {
        match resolved {
            Resolved::File(data) => data.bytes().to_vec(),
            other => panic!("expected a file, got {other:?}"),
        }
    }

    #[test]
    fn hook_answers_first_then_falls_back() {
        let mac = [0x52, 0x54, 0, 0, 0, 1];
        let resolver = DynamicResolver::new(
            move |req: &ResolveRequest<'_>| match (req.path, req.mac) {
                ("refind.pxe", Some(m)) if m == mac => {
                    Some(Resolved::File(Arc::new(b"#!ipxe\n".to_vec())))
                }
                ("secret", _) => Some(Resolved::Denied),
                _ => None,
            },
            Echo,
        );
        assert_eq!(
            bytes(resolver.resolve(&request("refind.pxe", Some(mac)))),
            b"#!ipxe\n"
        );
        assert_eq!(
            bytes(resolver.resolve(&request("refind.pxe", None))),
            b"refind.pxe"
        );
        assert!(matches!(
            resolver.resolve(&request("secret", None)),
            Resolved::Denied
        ));
        assert_eq!(
            bytes(resolver.resolve(&request("ipxe.efi", None))),
            b"ipxe.efi"
        );
    }
}
