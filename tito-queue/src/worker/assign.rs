//! Which partitions a worker should hold: rendezvous (highest random weight) hashing.
//!
//! Each partition goes to the live member whose range covers it with the highest hash of
//! (member id, partition). Workers that read the same members agree without talking to each
//! other, shares come out even, and a member joining or leaving moves only its own share.

use std::collections::BTreeSet;

use tito_core::event::PARTITIONS;

use crate::stored::Member;

/// The partitions of `[start, end)` that rendezvous hashing gives to `me` among the live members.
pub(crate) fn assign(
    me: &str,
    start: u32,
    end: u32,
    members: &[(String, Member)],
    now: u64,
) -> BTreeSet<u32> {
    let live: Vec<(&str, u32, u32)> = members
        .iter()
        .filter(|(id, m)| id != me && m.expires_at > now)
        .map(|(id, m)| (id.as_str(), m.start, m.end))
        .chain([(me, start, end)])
        .collect();
    (start..end.min(PARTITIONS))
        .filter(|&p| {
            live.iter()
                .filter(|(_, from, to)| (*from..*to).contains(&p))
                .max_by_key(|(id, _, _)| (score(id, p), *id))
                .is_some_and(|(id, _, _)| *id == me)
        })
        .collect()
}

/// A well-mixed hash of (member, partition): FNV-1a, then the splitmix64 finalizer.
fn score(member: &str, partition: u32) -> u64 {
    let mut h = member
        .bytes()
        .chain(partition.to_be_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(end: u32) -> Member {
        Member {
            expires_at: u64::MAX,
            start: 0,
            end,
        }
    }

    #[test]
    fn members_split_partitions_without_overlap_or_gaps() {
        let members = vec![
            ("a".to_string(), member(1024)),
            ("b".to_string(), member(1024)),
        ];
        let a = assign("a", 0, 1024, &members, 0);
        let b = assign("b", 0, 1024, &members, 0);
        assert!(a.is_disjoint(&b));
        assert_eq!(a.len() + b.len(), 1024);
        assert!(a.len() > 400 && b.len() > 400, "{} / {}", a.len(), b.len());
    }

    #[test]
    fn expired_members_and_foreign_ranges_do_not_count() {
        let mut gone = member(1024);
        gone.expires_at = 5;
        let members = vec![
            ("b".to_string(), gone),
            (
                "c".to_string(),
                Member {
                    expires_at: u64::MAX,
                    start: 512,
                    end: 1024,
                },
            ),
        ];
        let a = assign("a", 0, 512, &members, 10);
        assert_eq!(a.len(), 512);
    }
}
