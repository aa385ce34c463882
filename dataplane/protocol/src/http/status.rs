//! The statuses the server answers with.

/// Every status the server sends, in metric order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 200: the whole file.
    Ok,
    /// 206: one byte range.
    PartialContent,
    /// 400: malformed request or refused path.
    BadRequest,
    /// 403: the name exists but may not be served.
    Forbidden,
    /// 404: no such file.
    NotFound,
    /// 405: a method other than GET or HEAD.
    MethodNotAllowed,
    /// 414: the request target is too long.
    UriTooLong,
    /// 416: the range lies outside the file.
    RangeNotSatisfiable,
    /// 431: the request head is too large or has too many headers.
    HeaderFieldsTooLarge,
}

impl Status {
    /// Every status, in [`index`](Self::index) order.
    pub const ALL: [Self; 9] = [
        Self::Ok,
        Self::PartialContent,
        Self::BadRequest,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::UriTooLong,
        Self::RangeNotSatisfiable,
        Self::HeaderFieldsTooLarge,
    ];

    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::PartialContent => 206,
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::UriTooLong => 414,
            Self::RangeNotSatisfiable => 416,
            Self::HeaderFieldsTooLarge => 431,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::PartialContent => "Partial Content",
            Self::BadRequest => "Bad Request",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::UriTooLong => "URI Too Long",
            Self::RangeNotSatisfiable => "Range Not Satisfiable",
            Self::HeaderFieldsTooLarge => "Request Header Fields Too Large",
        }
    }

    /// Position in [`ALL`](Self::ALL), for counter arrays.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Whether the status delivers file bytes.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Ok | Self::PartialContent)
    }
}
