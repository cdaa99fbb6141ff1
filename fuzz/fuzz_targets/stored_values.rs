//! Every pure decoder of stored bytes: the key codec and key parsers, and each stored queue
//! value. None may panic; each rejection must be a typed error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tito::queue::{
    CallRecord, Checkpoint, DeadLetter, Member, PartitionLease, PendingTimes, ReadyMark,
    RetryEntry, decode_event,
};
use tito::{TitoError, codec, keyspace};

fuzz_target!(|input: &[u8]| {
    let _ = codec::decode_tuple(input);
    let _ = codec::display_key(input);
    let _ = keyspace::parse_record_key(input);
    let _ = keyspace::parse_schema_key(input);
    for at in [0, 1, 2, input.len()] {
        let _ = keyspace::id_from_index_key(input, at);
        let _ = keyspace::split_index_key(input, at);
        let _ = keyspace::queue::pending_key_parts(input, at);
        let _ = keyspace::queue::ready_key_parts(input, at);
        let _ = keyspace::queue::corrupt_source(input, at);
    }
    let key = b"k";
    let _ = PendingTimes::of(input, 0);
    let errors = [
        decode_event(key, input).err(),
        ReadyMark::decode(key, input).err(),
        PartitionLease::decode(key, input).err(),
        Member::decode(key, input).err(),
        Checkpoint::decode(key, input).err(),
        RetryEntry::decode(key, input).err(),
        DeadLetter::decode(key, input).err(),
        CallRecord::decode(key, input).err(),
    ];
    for err in errors.iter().flatten() {
        assert!(matches!(err, TitoError::Decode { .. }), "{err:?}");
    }
});
