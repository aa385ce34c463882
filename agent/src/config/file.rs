//! The file's serde shape and its conversion into [`AgentFile`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{AgentFile, ConfigFileError, LogFormat, TlsFiles};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    listen: Option<Spanned<String>>,
    state: Option<Spanned<String>>,
    #[serde(default)]
    dataplanes: Vec<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    tls: Option<FileTls>,
    metrics: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    resync_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Spanned<String>,
}

/// A refused value: its span, key and reason.
struct Rejection {
    span: Range<usize>,
    key: String,
    message: String,
}

/// See [`super::parse`].
pub(super) fn parse(text: &str, origin: &str, base: &Path) -> Result<AgentFile, ConfigFileError> {
    let file: File = toml::from_str(text).map_err(|e| ConfigFileError::Syntax {
        location: locate(origin, text, e.span()),
        message: e.message().trim_end().to_owned(),
    })?;
    convert(file, base).map_err(|r| ConfigFileError::Invalid {
        location: locate(origin, text, Some(r.span)),
        key: r.key,
        message: r.message,
    })
}

fn convert(file: File, base: &Path) -> Result<AgentFile, Rejection> {
    let path = |value: &Spanned<String>, key: &str| -> Result<PathBuf, Rejection> {
        if value.get_ref().is_empty() {
            return Err(reject(value, key, "must not be empty".into()));
        }
        Ok(base.join(value.get_ref()))
    };
    let dataplanes = file
        .dataplanes
        .iter()
        .enumerate()
        .map(|(i, d)| dataplane(d, &format!("dataplanes[{i}]")))
        .collect::<Result<_, _>>()?;
    let tls = match &file.tls {
        Some(t) => Some(TlsFiles {
            cert: path(&t.cert, "tls.cert")?,
            key: path(&t.key, "tls.key")?,
            client_ca: path(&t.client_ca, "tls.client-ca")?,
        }),
        None => None,
    };
    let resync_ms = match &file.resync_ms {
        Some(ms) if *ms.get_ref() == 0 => {
            return Err(Rejection {
                span: ms.span(),
                key: "resync-ms".into(),
                message: "must be at least 1".into(),
            });
        }
        Some(ms) => Some(*ms.get_ref()),
        None => None,
    };
    Ok(AgentFile {
        listen: parsed(file.listen.as_ref(), "listen")?,
        state: file.state.as_ref().map(|s| path(s, "state")).transpose()?,
        dataplanes,
        token_file: file
            .token_file
            .as_ref()
            .map(|t| path(t, "token-file"))
            .transpose()?,
        tls,
        metrics: parsed(file.metrics.as_ref(), "metrics")?,
        log_format: parsed::<LogFormat>(file.log_format.as_ref(), "log-format")?,
        resync_ms,
    })
}

/// Parses a string value with `FromStr`.
fn parsed<T>(value: Option<&Spanned<String>>, key: &str) -> Result<Option<T>, Rejection>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let Some(value) = value else {
        return Ok(None);
    };
    value
        .get_ref()
        .parse()
        .map(Some)
        .map_err(|e: T::Err| reject(value, key, e.to_string()))
}

/// A data plane endpoint: `unix:PATH` or an `http://` / `https://` URL.
fn dataplane(value: &Spanned<String>, key: &str) -> Result<String, Rejection> {
    let text = value.get_ref();
    let ok = ["unix:", "http://", "https://"]
        .iter()
        .any(|prefix| text.len() > prefix.len() && text.starts_with(prefix));
    if !ok {
        let message = format!("`{text}` is not unix:PATH or http://HOST:PORT");
        return Err(reject(value, key, message));
    }
    Ok(text.clone())
}

fn reject(value: &Spanned<String>, key: &str, message: String) -> Rejection {
    Rejection {
        span: value.span(),
        key: key.to_owned(),
        message,
    }
}

/// `origin:line:column` of the start of `span` (or `origin` without one).
fn locate(origin: &str, text: &str, span: Option<Range<usize>>) -> String {
    let Some(span) = span else {
        return origin.to_owned();
    };
    let mut end = span.start.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    format!("{origin}:{line}:{column}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::server::Listen;

    const FULL: &str = r#"
listen = "127.0.0.1:7070"
state = "state"
dataplanes = ["unix:/run/bootwave/control.sock", "http://10.0.0.2:7071"]
token-file = "/etc/bootwave/token"
metrics = "127.0.0.1:9172"
log-format = "json"
resync-ms = 500

[tls]
cert = "agent.pem"
key = "agent.key"
client-ca = "ca.pem"
"#;

    fn error(text: &str) -> String {
        parse(text, "agent.toml", Path::new("/etc/bootwave"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_key_is_read() {
        let f = parse(FULL, "agent.toml", Path::new("/etc/bootwave")).unwrap();
        assert_eq!(
            f.listen,
            Some(Listen::Tcp("127.0.0.1:7070".parse().unwrap()))
        );
        assert_eq!(f.state, Some(PathBuf::from("/etc/bootwave/state")));
        assert_eq!(f.dataplanes.len(), 2);
        assert_eq!(f.token_file, Some(PathBuf::from("/etc/bootwave/token")));
        assert_eq!(f.metrics, Some("127.0.0.1:9172".parse().unwrap()));
        assert_eq!(f.log_format, Some(LogFormat::Json));
        assert_eq!(f.resync_ms, Some(500));
        let tls = f.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/bootwave/agent.pem"));
        assert_eq!(tls.client_ca, PathBuf::from("/etc/bootwave/ca.pem"));
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        assert_eq!(
            parse("", "a", Path::new("/")).unwrap(),
            AgentFile::default()
        );
    }

    #[test]
    fn errors_name_the_position_and_key() {
        assert_eq!(
            error("state = \"s\"\nlisten = \"nowhere\"\n"),
            "agent.toml:2:10: listen: \"nowhere\" is neither unix:PATH nor HOST:PORT"
        );
        assert_eq!(
            error("dataplanes = [\"unix:/a\", \"ftp://b\"]"),
            "agent.toml:1:26: dataplanes[1]: `ftp://b` is not unix:PATH or http://HOST:PORT"
        );
        assert_eq!(
            error("log-format = \"xml\""),
            "agent.toml:1:14: log-format: `xml` is not human or json"
        );
        assert!(error("metrics = \"9172\"").starts_with("agent.toml:1:11: metrics: "));
        assert!(error("resync-ms = 0").starts_with("agent.toml:1:13: resync-ms: "));
        assert!(
            error("[tls]\ncert = \"\"\nkey = \"k\"\nclient-ca = \"c\"")
                .starts_with("agent.toml:2:8: tls.cert: ")
        );
    }

    #[test]
    fn unknown_and_missing_keys_are_refused() {
        let e = error("listen = \"127.0.0.1:1\"\nlisten-addr = \"x\"\n");
        assert!(e.starts_with("agent.toml:2:1: "), "{e}");
        assert!(e.contains("listen-addr"), "{e}");
        let e = error("[tls]\ncert = \"c\"\n");
        assert!(e.starts_with("agent.toml:1:1: "), "{e}");
        assert!(e.contains("key"), "{e}");
        let e = error("resync-ms = \"fast\"");
        assert!(e.starts_with("agent.toml:1:13: "), "{e}");
    }
}
