//! The values the queue stores next to pending events: leases, memberships, checkpoints, retry
//! entries, dead letters and call records.
//!
//! Leases and memberships are small, fixed-shape and written on every acknowledgement or
//! heartbeat, so they use a compact binary layout; the others hold an event and stay JSON
//! (self-describing). Every value starts with a version byte, and an unknown or corrupt value is
//! a decode error naming its key, never a panic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tito_core::{TitoError, TitoEvent, keyspace};

/// Version byte of every value in this module.
const V1: u8 = 1;

fn corrupt(key: &[u8], reason: &str) -> TitoError {
    TitoError::Decode {
        key: keyspace::display_key(key),
        reason: reason.to_string(),
    }
}

fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, TitoError> {
    let mut out = vec![V1];
    serde_json::to_writer(&mut out, value).map_err(|e| TitoError::Serialize(e.to_string()))?;
    Ok(out)
}

fn decode_json<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, TitoError> {
    match bytes.split_first() {
        Some((&V1, body)) => serde_json::from_slice(body).map_err(|e| corrupt(key, &e.to_string())),
        _ => Err(corrupt(key, "unknown queue value format")),
    }
}

/// Reads fixed-size big-endian fields from the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*head))
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }
}

/// Who may acknowledge the events of one partition for one consumer group, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLease {
    /// Id of the owning worker; empty once released.
    pub owner: String,
    /// Fencing token: grows by one on every acquisition, never reused.
    pub token: u64,
    /// Micros since the epoch after which another worker may take the lease.
    pub expires_at: u64,
}

impl PartitionLease {
    /// Whether a worker other than the owner may take the lease at `now`.
    pub fn is_free(&self, now: u64) -> bool {
        self.owner.is_empty() || self.expires_at <= now
    }

    /// Whether `worker` holds the lease with fencing token `token`.
    pub fn is_held_by(&self, worker: &str, token: u64) -> bool {
        self.owner == worker && self.token == token
    }

    /// The stored bytes: version, token, expiry, owner.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + self.owner.len());
        out.push(V1);
        out.extend_from_slice(&self.token.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(self.owner.as_bytes());
        out
    }

    /// Decodes the lease stored at `key`.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, TitoError> {
        let decoded = match bytes.split_first() {
            Some((&V1, rest)) => {
                let mut fields = Fields(rest);
                fields
                    .u64()
                    .zip(fields.u64())
                    .and_then(|(token, expires_at)| {
                        let owner = String::from_utf8(fields.0.to_vec()).ok()?;
                        Some(PartitionLease {
                            owner,
                            token,
                            expires_at,
                        })
                    })
            }
            _ => None,
        };
        decoded.ok_or_else(|| corrupt(key, "corrupt partition lease"))
    }
}

/// A live worker of a consumer group, announced so that workers can split the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Micros since the epoch after which the worker counts as gone.
    pub expires_at: u64,
    /// First partition the worker takes.
    pub start: u32,
    /// One past the last partition the worker takes.
    pub end: u32,
}

impl Member {
    /// The stored bytes: version, expiry, start, end.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(V1);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.start.to_be_bytes());
        out.extend_from_slice(&self.end.to_be_bytes());
        out
    }

    /// Decodes the membership stored at `key`.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, TitoError> {
        let decoded = match bytes.split_first() {
            Some((&V1, rest)) => {
                let mut f = Fields(rest);
                match (f.u64(), f.u32(), f.u32()) {
                    (Some(expires_at), Some(start), Some(end)) => Some(Member {
                        expires_at,
                        start,
                        end,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        decoded.ok_or_else(|| corrupt(key, "corrupt worker membership"))
    }
}

/// Progress of one consumer group on one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The partition.
    pub partition: u32,
    /// Events handled successfully.
    pub handled: u64,
    /// Events moved to the dead letters after their last attempt.
    pub dead_lettered: u64,
    /// Position of the last event handled or dead-lettered.
    pub last_position: u64,
    /// Id of that event.
    pub last_event_id: String,
    /// When the checkpoint was written, micros since the epoch.
    pub updated_at: u64,
}

impl Checkpoint {
    /// The stored bytes.
    pub fn encode(&self) -> Result<Vec<u8>, TitoError> {
        encode_json(self)
    }

    /// Decodes the checkpoint stored at `key`.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, TitoError> {
        decode_json(key, bytes)
    }
}

/// An event of a parked key, waiting in the retry area: the failing head of its key, or a later
/// event of the same key queued behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryEntry {
    /// The event.
    pub event: TitoEvent,
    /// Attempts made so far (0 for an event queued behind the head).
    pub attempts: u32,
    /// Earliest time of the next attempt, micros since the epoch.
    pub next_at: u64,
    /// The error of the last attempt.
    pub last_error: Option<String>,
}

impl RetryEntry {
    /// The stored bytes.
    pub fn encode(&self) -> Result<Vec<u8>, TitoError> {
        encode_json(self)
    }

    /// Decodes the retry entry stored at `key`.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, TitoError> {
        decode_json(key, bytes)
    }
}

/// An event whose handler failed on every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The consumer group that gave up on the event.
    pub group: String,
    /// The event.
    pub event: TitoEvent,
    /// The error of the last attempt.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the event was dead-lettered, micros since the epoch.
    pub failed_at: u64,
}

impl DeadLetter {
    /// The stored bytes.
    pub fn encode(&self) -> Result<Vec<u8>, TitoError> {
        encode_json(self)
    }

    /// Decodes the dead letter stored at `key`.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, TitoError> {
        decode_json(key, bytes)
    }
}

/// A handler call started on a partition taken over from a worker that did not release it
/// (it may have died inside a handler). The acknowledgement removes it; found again, the call
/// never finished, and it counts as an attempt of its event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The event being handled.
    pub event_id: String,
    /// Calls of the event started this way and never finished, this one included.
    pub calls: u32,
}

impl CallRecord {
    /// The stored bytes.
    pub fn encode(&self) -> Result<Vec<u8>, TitoError> {
        encode_json(self)
    }

    /// Decodes the call record stored at `key`.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, TitoError> {
        decode_json(key, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_trip_and_refuse_garbage() {
        let lease = PartitionLease {
            owner: "w-1".into(),
            token: 7,
            expires_at: 99,
        };
        assert_eq!(
            PartitionLease::decode(b"k", &lease.encode()).ok(),
            Some(lease)
        );
        assert!(PartitionLease::decode(b"k", &[1, 2, 3]).is_err());
        assert!(PartitionLease::decode(b"k", &[]).is_err());
        let member = Member {
            expires_at: 5,
            start: 0,
            end: 1024,
        };
        assert_eq!(Member::decode(b"k", &member.encode()).ok(), Some(member));
        assert!(Member::decode(b"k", &[9; 17]).is_err());
    }

    #[test]
    fn released_and_expired_leases_are_free() {
        let mut lease = PartitionLease {
            owner: String::new(),
            token: 3,
            expires_at: 1_000,
        };
        assert!(lease.is_free(10));
        lease.owner = "w".into();
        assert!(!lease.is_free(10));
        assert!(lease.is_free(1_000));
        assert!(lease.is_held_by("w", 3) && !lease.is_held_by("w", 2));
    }
}
