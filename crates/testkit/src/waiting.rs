//! The value of a field of a queue's `waiting` hash, for tests that read or forge
//! one by hand: layout 5 names the job's stream entry `<ms>-<seq>` in 8 bytes (the ms
//! in 6, big-endian, the sequence number in 2), then `<type> <input>`
//! (docs/STORAGE.md). Written here again, apart from the store, so a test checks the
//! store against the documented format rather than against itself.

/// The stream entry id a waiting value names, and the `<type> <input>` after it.
///
/// ```
/// let value = tether_testkit::waiting_value("1764590000123-7", b"noop \x80");
/// assert_eq!(value.len(), 8 + 6);
/// let (sid, rest) = tether_testkit::split_waiting_value(&value);
/// assert_eq!((sid.as_str(), rest), ("1764590000123-7", &b"noop \x80"[..]));
/// ```
pub fn split_waiting_value(value: &[u8]) -> (String, &[u8]) {
    assert!(value.len() >= 8, "a waiting value of {} bytes", value.len());
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&value[..6]);
    let seq = u16::from_be_bytes([value[6], value[7]]);
    (format!("{}-{seq}", u64::from_be_bytes(ms)), &value[8..])
}

/// A waiting value naming the stream entry `sid` (`<ms>-<seq>`, seq < 65,536),
/// followed by `rest` (`<type> <input>`).
pub fn waiting_value(sid: &str, rest: &[u8]) -> Vec<u8> {
    let (ms, seq) = sid.split_once('-').expect("an entry id");
    let ms: u64 = ms.parse().expect("ms");
    let seq: u16 = seq.parse().expect("a sequence number under 65,536");
    let mut value = ms.to_be_bytes()[2..].to_vec();
    value.extend_from_slice(&seq.to_be_bytes());
    value.extend_from_slice(rest);
    value
}
