//! How the nodes of a Bellwether cluster share the work: services are hashed into a
//! fixed number of partitions ([`partition_of`]), and each partition is owned by one node
//! at a time through a lease ([`leases`]). Any node publishes what it ingests to the
//! partition's subject of one stream; the owner applies it to its store ([`ingest`]).
//!
//! Nothing here runs a consensus of its own: the leases are decided from one log that
//! NATS JetStream replicates, read in the same order by every node.

#![forbid(unsafe_code)]

pub mod ingest;
pub mod leases;

/// The partition of `service` among `partitions` (FNV-1a 64 of the name): the same on
/// every node, build and platform.
pub fn partition_of(service: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in service.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("checkout", 64), partition_of("checkout", 64));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1_000 {
            seen.insert(partition_of(&format!("service-{i}"), 64));
        }
        assert_eq!(seen.len(), 64, "1,000 services reach every partition");
        assert_eq!(partition_of("anything", 0), 0);
    }
}
