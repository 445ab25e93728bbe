//! Encodings of the job hash. Field names are short because every pending job
//! carries them; `docs/ARCHITECTURE.md` lists them all.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_model::{DEFAULT_MAX_ATTEMPTS, ErrorCode, Job, JobId, JobSpec, RetryPolicy, Status};

use crate::StoreError;

/// Hash fields of a job listing summary (everything but input, result and checkpoint).
pub(crate) const SUMMARY_FIELDS: &[&str] = &[
    "type", "owner", "name", "desc", "st", "ph", "pg", "pmsg", "eta", "msg", "ec", "ei", "att",
    "max", "can", "creq", "wk", "ct", "ut", "stt", "ft", "ra", "xt", "to", "dead", "sch", "fire",
    "pri", "grp", "sb", "ext", "ld", "par", "root", "wt", "ep",
];

/// MessagePack with field names, so records written by a newer version still decode.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|e| StoreError::decode("msgpack", e))
}

/// Decodes MessagePack written by [`encode`].
pub fn decode<T: DeserializeOwned>(field: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::decode(field, e))
}

pub(crate) fn encode_backoff(p: &RetryPolicy) -> String {
    format!("{},{},{},{}", p.initial_ms, p.factor, p.cap_ms, p.jitter)
}

pub(crate) fn decode_backoff(s: &str) -> RetryPolicy {
    let mut parts = s.split(',');
    let mut next = || parts.next().and_then(|p| p.parse::<f64>().ok());
    match (next(), next(), next(), next()) {
        (Some(initial), Some(factor), Some(cap), Some(jitter)) => RetryPolicy {
            initial_ms: initial as u64,
            factor,
            cap_ms: cap as u64,
            jitter,
        },
        _ => RetryPolicy::default(),
    }
}

/// The record's static fields for `enqueue.lua`, borrowing from the spec and input.
pub(crate) fn spec_fields<'a>(
    spec: &'a JobSpec,
    input: &'a [u8],
) -> Vec<(&'static str, Cow<'a, [u8]>)> {
    let mut fields: Vec<(&'static str, Cow<'a, [u8]>)> = vec![
        ("type", Cow::Borrowed(spec.job_type.as_bytes())),
        ("in", Cow::Borrowed(input)),
    ];
    // Layout 2: a field equal to its default is not stored (every pending job would
    // carry it); readers, the scripts too, apply the default.
    if spec.max_attempts != DEFAULT_MAX_ATTEMPTS {
        fields.push((
            "max",
            Cow::Owned(spec.max_attempts.to_string().into_bytes()),
        ));
    }
    if spec.backoff != RetryPolicy::default() {
        fields.push(("bo", Cow::Owned(encode_backoff(&spec.backoff).into_bytes())));
    }
    if !spec.cancelable {
        fields.push(("can", Cow::Borrowed(b"0")));
    }
    if let Some(t) = spec.timeout {
        fields.push((
            "to",
            Cow::Owned((t.as_millis() as u64).to_string().into_bytes()),
        ));
    }
    for (name, value) in [
        ("owner", &spec.owner),
        ("name", &spec.name),
        ("desc", &spec.description),
        ("sch", &spec.schedule),
    ] {
        if let Some(v) = value {
            fields.push((name, Cow::Borrowed(v.as_bytes())));
        }
    }
    if let Some(t) = spec.fire_time {
        fields.push((
            "fire",
            Cow::Owned(t.timestamp_millis().to_string().into_bytes()),
        ));
    }
    // Fields equal to their defaults are left out (priority 5, no group).
    if spec.priority != tether_model::DEFAULT_PRIORITY {
        fields.push(("pri", Cow::Owned(spec.priority.to_string().into_bytes())));
    }
    if let Some(group) = spec.effective_group() {
        fields.push(("grp", Cow::Borrowed(group.as_bytes())));
    }
    if let Some(parent) = &spec.parent {
        fields.push(("par", Cow::Owned(parent.id.to_string().into_bytes())));
        fields.push(("pq", Cow::Borrowed(parent.queue.as_bytes())));
        fields.push(("root", Cow::Owned(parent.root.to_string().into_bytes())));
    }
    if let Some(weight) = spec.weight.filter(|w| *w > 1) {
        fields.push(("wt", Cow::Owned(weight.to_string().into_bytes())));
    }
    if let Some(trace) = &spec.trace {
        fields.push(("tp", Cow::Borrowed(trace.encode().as_bytes())));
    }
    fields
}

pub(crate) fn ms_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A job hash read back as field → bytes.
pub(crate) struct Fields(pub HashMap<String, Vec<u8>>);

/// The 16 bytes that name a job in `waiting` and in its stream entry (layout 4).
pub(crate) fn raw_id(id: &JobId) -> [u8; 16] {
    *id.as_uuid().as_bytes()
}

/// The job a `w` entry or `waiting` field names (`None` unless 16 bytes).
pub(crate) fn waiting_id(raw: &[u8]) -> Option<JobId> {
    let bytes: [u8; 16] = raw.try_into().ok()?;
    Some(JobId::from_uuid(uuid::Uuid::from_bytes(bytes)))
}

impl Fields {
    /// The record a waiting job stands for, from its value in `waiting`: the record
    /// it gets when it leaves the stream, before its lease (`None` when malformed).
    /// The value is its stream entry id in 8 bytes (layout 5: the ms in 6, big-endian,
    /// the sequence number in 2) then `<type> <input>`; layout 4's value, and the head
    /// `waiting_heads.lua` answers (without the input), spell the entry id out:
    /// `<ms>-<seq> <type> [<input>]`. As the scripts do, a value whose first byte is
    /// 48 (`'0'`) or more is spelled out: a packed one's is the top byte of a ms count
    /// under 10^13 (the enqueue spells out a larger one), at most 9.
    pub(crate) fn of_waiting(value: &[u8]) -> Option<Fields> {
        let (created, sid, rest) = match value.first() {
            Some(b) if *b >= b'0' => {
                let space = value.iter().position(|b| *b == b' ')?;
                let sid = std::str::from_utf8(&value[..space]).ok()?;
                let (ms, seq) = sid.split_once('-')?;
                let ms: u64 = ms.parse().ok()?;
                let _: u64 = seq.parse().ok()?;
                (ms, sid.to_owned(), &value[space + 1..])
            }
            _ => {
                // (As the scripts read it: a type, a space, then the input.)
                if value.len() < 10 || !value[8..].contains(&b' ') {
                    return None;
                }
                let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
                let mut ms = [0u8; 8];
                ms[2..].copy_from_slice(&head[..6]);
                let ms = u64::from_be_bytes(ms);
                let seq = u16::from_be_bytes([head[6], head[7]]);
                (ms, format!("{ms}-{seq}"), &value[8..])
            }
        };
        let mut parts = rest.splitn(2, |b| *b == b' ');
        let (job_type, input) = (parts.next()?, parts.next());
        if job_type.is_empty() {
            return None;
        }
        let mut fields = HashMap::from([
            ("st".to_owned(), b"pending".to_vec()),
            ("ct".to_owned(), created.to_string().into_bytes()),
            ("sid".to_owned(), sid.into_bytes()),
            ("type".to_owned(), job_type.to_vec()),
        ]);
        if let Some(input) = input {
            fields.insert("in".to_owned(), input.to_vec());
        }
        Some(Fields(fields))
    }

    fn str(&self, f: &str) -> Option<&str> {
        self.0.get(f).and_then(|v| std::str::from_utf8(v).ok())
    }
    fn string(&self, f: &str) -> Option<String> {
        self.str(f).map(str::to_owned)
    }
    fn num(&self, f: &str) -> Option<i64> {
        self.str(f).and_then(|s| s.parse().ok())
    }
    fn time(&self, f: &str) -> Option<DateTime<Utc>> {
        self.num(f).map(ms_to_time)
    }
    fn flag(&self, f: &str, default: bool) -> bool {
        self.str(f).map(|s| s == "1").unwrap_or(default)
    }

    /// Builds the record. `lease_deadline_ms` comes from the leases sorted set.
    pub(crate) fn into_job(
        self,
        id: JobId,
        queue: &str,
        lease_deadline_ms: Option<i64>,
    ) -> Result<Job, StoreError> {
        let status = self
            .str("st")
            .ok_or_else(|| StoreError::decode("st", "missing"))?
            .parse()
            .map_err(|e| StoreError::decode("st", e))?;
        let input = match self.0.get("in") {
            Some(bytes) => decode::<serde_json::Value>("in", bytes)
                .unwrap_or_else(|e| serde_json::Value::String(format!("<undecodable input: {e}>"))),
            None => serde_json::Value::Null,
        };
        let result = match self.0.get("res") {
            Some(bytes) => Some(decode::<serde_json::Value>("res", bytes)?),
            None => None,
        };
        let error_info = match self.str("ei") {
            Some(s) if !s.is_empty() => {
                serde_json::from_str(s).map_err(|e| StoreError::decode("ei", e))?
            }
            _ => Vec::new(),
        };
        let created_at = self.time("ct").unwrap_or_default();
        // A final status implies what it does not store (common.lua, finalize):
        // progress 100, its ETA its finish time; the update time is the latest of the
        // times written (`ut` only where nothing else marks the change: the claim's
        // `stt` and the finish's `ft` do).
        let finished_at = self.time("ft");
        let is_final = Status::is_final(status);
        let updated_at = [self.time("ut"), self.time("stt"), finished_at]
            .into_iter()
            .flatten()
            .fold(created_at, DateTime::max);
        // An external task's lease is on its record while it is not final.
        let lease_timeout_ms = self.num("ext").map(|ms| ms.max(0) as u64);
        let lease_deadline_ms = lease_deadline_ms.or_else(|| {
            lease_timeout_ms
                .filter(|_| !Status::is_final(status))
                .and(self.num("ld"))
        });
        Ok(Job {
            id,
            queue: queue.to_owned(),
            job_type: self.string("type").unwrap_or_default(),
            input,
            owner: self.string("owner"),
            name: self.string("name"),
            description: self.string("desc"),
            status,
            phase: self.str("ph").and_then(|p| p.parse().ok()),
            progress: if is_final {
                100
            } else {
                self.num("pg").unwrap_or(0).clamp(0, 100) as u8
            },
            progress_message: self.string("pmsg"),
            eta: if is_final {
                finished_at.or_else(|| self.time("eta"))
            } else {
                self.time("eta")
            },
            result,
            message: self.string("msg").unwrap_or_default(),
            error_code: self.str("ec").map(ErrorCode::from),
            error_info,
            // An absent `att` is `ep` (layout 5: written only once they differ).
            attempts: self.num("att").or_else(|| self.num("ep")).unwrap_or(0) as u32,
            max_attempts: self
                .num("max")
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(DEFAULT_MAX_ATTEMPTS),
            cancelable: self.flag("can", true),
            cancel_requested: self.flag("creq", false),
            worker: self.string("wk"),
            lease_expires_at: lease_deadline_ms.map(ms_to_time),
            created_at,
            updated_at,
            started_at: self.time("stt"),
            finished_at,
            run_at: self.time("ra"),
            expires_at: self.time("xt"),
            timeout_ms: self.num("to").map(|t| t as u64),
            dead: self.flag("dead", false),
            schedule: self.string("sch"),
            fire_time: self.time("fire"),
            priority: self
                .num("pri")
                .and_then(|p| u8::try_from(p).ok())
                .unwrap_or(tether_model::DEFAULT_PRIORITY),
            group: self.string("grp"),
            start_by: self.time("sb"),
            external: lease_timeout_ms.is_some(),
            lease_timeout_ms,
            parent_id: self.str("par").and_then(|p| p.parse().ok()),
            root_id: self.str("root").and_then(|p| p.parse().ok()),
            subtasks: Vec::new(),
            subtask_count: 0,
            weight: self
                .num("wt")
                .and_then(|w| u32::try_from(w).ok())
                .unwrap_or(1)
                .max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_round_trips() {
        let p = RetryPolicy {
            initial_ms: 250,
            factor: 1.5,
            cap_ms: 9000,
            jitter: 0.1,
        };
        assert_eq!(decode_backoff(&encode_backoff(&p)), p);
        assert_eq!(decode_backoff("garbage"), RetryPolicy::default());
    }

    #[test]
    fn msgpack_is_named_so_new_fields_do_not_break_old_readers() {
        #[derive(Serialize)]
        struct V2 {
            a: u32,
            b: u32,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct V1 {
            a: u32,
        }
        let bytes = encode(&V2 { a: 1, b: 2 }).unwrap();
        assert_eq!(decode::<V1>("x", &bytes).unwrap(), V1 { a: 1 });
    }

    #[test]
    fn a_waiting_value_is_read_in_either_layout() {
        let field = |f: &Fields, name: &str| String::from_utf8(f.0[name].clone()).unwrap();
        // Layout 5: 1764590000123-700 in 8 bytes, then the type and the input.
        let mut v5 = 1_764_590_000_123u64.to_be_bytes()[2..].to_vec();
        v5.extend_from_slice(&700u16.to_be_bytes());
        v5.extend_from_slice(b"noop \x80");
        let f = Fields::of_waiting(&v5).unwrap();
        assert_eq!(field(&f, "sid"), "1764590000123-700");
        assert_eq!(field(&f, "ct"), "1764590000123");
        assert_eq!(field(&f, "type"), "noop");
        assert_eq!(f.0["in"], b"\x80");
        // Layout 4, and the head waiting_heads answers (no input).
        let f = Fields::of_waiting(b"1764590000123-700 noop \x80").unwrap();
        assert_eq!(field(&f, "sid"), "1764590000123-700");
        assert_eq!(field(&f, "ct"), "1764590000123");
        assert_eq!(f.0["in"], b"\x80");
        let f = Fields::of_waiting(b"1764590000123-7 noop").unwrap();
        assert_eq!(field(&f, "sid"), "1764590000123-7");
        assert!(!f.0.contains_key("in"));
        // Malformed.
        for bad in [
            &b""[..],
            b"1764590000123 noop",
            b"12-x noop ",
            b"\x01\x02",
            b"1-2 ",
            b"\x01\x02\x03\x04\x05\x06\x00\x01noop",
            b"\x01\x02\x03\x04\x05\x06\x00\x01 ",
        ] {
            assert!(Fields::of_waiting(bad).is_none(), "{bad:?}");
        }
        let mut no_type = v5[..8].to_vec();
        no_type.extend_from_slice(b" x");
        assert!(Fields::of_waiting(&no_type).is_none());
    }
}
