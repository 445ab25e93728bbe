use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Machine-readable failure codes (Xen `error_info[0]`, vSphere fault names).
///
/// Handlers may use their own codes through [`ErrorCode::Custom`]; the names
/// below are reserved for Tether itself.
///
/// ```
/// use tether_model::ErrorCode;
/// assert_eq!(ErrorCode::from("LeaseExpired"), ErrorCode::LeaseExpired);
/// assert_eq!(ErrorCode::from("DiskFull").to_string(), "DiskFull");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The job ran past its `timeout`.
    Timedout,
    /// The job was cancelled (vSphere `RequestCanceled`).
    RequestCanceled,
    /// The worker holding the job stopped renewing its lease.
    LeaseExpired,
    /// The handler panicked.
    HandlerPanicked,
    /// No handler is registered for the job's type.
    UnknownJobType,
    /// The stored input could not be decoded into the handler's input type.
    InvalidPayload,
    /// The input is larger than the configured limit.
    PayloadTooLarge,
    /// The job was not started by its `start_by` deadline.
    Expired,
    /// A handler's own code.
    Custom(String),
}

impl ErrorCode {
    /// The code's name as stored and shown.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Timedout => "Timedout",
            ErrorCode::RequestCanceled => "RequestCanceled",
            ErrorCode::LeaseExpired => "LeaseExpired",
            ErrorCode::HandlerPanicked => "HandlerPanicked",
            ErrorCode::UnknownJobType => "UnknownJobType",
            ErrorCode::InvalidPayload => "InvalidPayload",
            ErrorCode::PayloadTooLarge => "PayloadTooLarge",
            ErrorCode::Expired => "Expired",
            ErrorCode::Custom(s) => s,
        }
    }
}

impl From<&str> for ErrorCode {
    fn from(s: &str) -> Self {
        match s {
            "Timedout" => ErrorCode::Timedout,
            "RequestCanceled" => ErrorCode::RequestCanceled,
            "LeaseExpired" => ErrorCode::LeaseExpired,
            "HandlerPanicked" => ErrorCode::HandlerPanicked,
            "UnknownJobType" => ErrorCode::UnknownJobType,
            "InvalidPayload" => ErrorCode::InvalidPayload,
            "PayloadTooLarge" => ErrorCode::PayloadTooLarge,
            "Expired" => ErrorCode::Expired,
            other => ErrorCode::Custom(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorCode::from(s.as_str()))
    }
}
