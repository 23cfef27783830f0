//! The lease state machine: what every node derives, message by message in stream
//! order, from the lease log (see the rules in [`super`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::Op;

/// A partition's holder as the log decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub node: String,
    pub api: String,
    /// Stream time (Unix ns) at which it runs out unless renewed.
    pub until_ns: i128,
}

/// The state every node derives from the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub leases: BTreeMap<u32, Lease>,
    /// Node → stream time of its last heartbeat.
    pub nodes: BTreeMap<String, i128>,
    /// Stream time of the latest message applied.
    pub now_ns: i128,
    /// Stream sequence of the latest message applied.
    pub applied_seq: u64,
    /// Stream time of the first message this view applied.
    pub started_ns: Option<i128>,
}

impl View {
    /// Applies one message of `node` stamped `at_ns`, for `partition` (None for a
    /// heartbeat). Returns whether it changed who holds the partition or until when.
    pub fn apply(
        &mut self,
        partition: Option<u32>,
        node: &str,
        api: &str,
        op: &Op,
        at_ns: i128,
        ttl: Duration,
    ) -> bool {
        self.now_ns = self.now_ns.max(at_ns);
        self.started_ns.get_or_insert(at_ns);
        let until_ns = at_ns + ttl.as_nanos() as i128;
        let Some(partition) = partition else {
            self.nodes.insert(node.to_owned(), at_ns);
            return false;
        };
        let current = self.leases.get(&partition);
        let held_by_node = current.is_some_and(|l| l.node == node && l.until_ns > at_ns);
        let free = current.is_none_or(|l| l.until_ns <= at_ns);
        let lease = Lease {
            node: node.to_owned(),
            api: api.to_owned(),
            until_ns,
        };
        match op {
            // A renewal of a free partition counts as a claim: a view that starts
            // where the stream's retention cut the claim off still names the holder.
            Op::Claim | Op::Renew if free || held_by_node => {
                self.leases.insert(partition, lease);
                true
            }
            Op::Release if held_by_node => {
                self.leases.remove(&partition);
                true
            }
            _ => false,
        }
    }

    /// Whether the view has read at least two TTLs of the log: every live lease has been
    /// renewed in that time, so it knows every holder. A younger view claims nothing.
    pub fn settled(&self, ttl: Duration) -> bool {
        self.started_ns
            .is_some_and(|start| self.now_ns - start >= 2 * ttl.as_nanos() as i128)
    }

    /// Nodes whose heartbeat is younger than `ttl` at the latest stream time.
    pub fn live_nodes(&self, ttl: Duration) -> BTreeSet<String> {
        let since = self.now_ns - ttl.as_nanos() as i128;
        self.nodes
            .iter()
            .filter(|(_, at)| **at > since)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// Partitions with no live lease at the latest stream time.
    pub fn free(&self, partitions: u32) -> Vec<u32> {
        (0..partitions)
            .filter(|p| self.leases.get(p).is_none_or(|l| l.until_ns <= self.now_ns))
            .collect()
    }

    pub fn held_by(&self, node: &str) -> BTreeSet<u32> {
        self.leases
            .iter()
            .filter(|(_, l)| l.node == node && l.until_ns > self.now_ns)
            .map(|(p, _)| *p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3);
    const S: i128 = 1_000_000_000;

    fn apply(view: &mut View, p: u32, node: &str, op: Op, at_s: i128) -> bool {
        view.apply(Some(p), node, "api", &op, at_s * S, TTL)
    }

    #[test]
    fn the_first_claim_wins_until_the_lease_runs_out() {
        let mut view = View::default();
        assert!(apply(&mut view, 0, "a", Op::Claim, 10));
        assert!(!apply(&mut view, 0, "b", Op::Claim, 11), "a holds it");
        assert!(apply(&mut view, 0, "a", Op::Renew, 12));
        assert!(!apply(&mut view, 0, "b", Op::Claim, 14), "renewed until 15");
        assert!(
            !apply(&mut view, 0, "b", Op::Renew, 14),
            "b holds nothing to renew"
        );
        assert!(
            apply(&mut view, 0, "b", Op::Claim, 15),
            "a's lease ran out at 15"
        );
        assert!(!apply(&mut view, 0, "a", Op::Renew, 16), "a lost it");
        assert_eq!(view.leases.get(&0).map(|l| l.node.as_str()), Some("b"));
    }

    #[test]
    fn only_the_holder_releases_and_then_anyone_may_claim() {
        let mut view = View::default();
        apply(&mut view, 3, "a", Op::Claim, 1);
        assert!(!apply(&mut view, 3, "b", Op::Release, 2));
        assert!(apply(&mut view, 3, "a", Op::Release, 2));
        assert!(apply(&mut view, 3, "b", Op::Claim, 2));
        assert_eq!(view.held_by("b"), BTreeSet::from([3]));
        assert!(view.held_by("a").is_empty());
    }

    #[test]
    fn live_nodes_and_free_partitions_follow_stream_time() {
        let mut view = View::default();
        view.apply(None, "a", "api", &Op::Heartbeat, S, TTL);
        view.apply(None, "b", "api", &Op::Heartbeat, 3 * S, TTL);
        apply(&mut view, 1, "b", Op::Claim, 3);
        assert_eq!(
            view.live_nodes(TTL),
            BTreeSet::from(["a".into(), "b".into()])
        );
        assert_eq!(view.free(3), vec![0, 2]);
        view.apply(None, "b", "api", &Op::Heartbeat, 5 * S, TTL);
        assert_eq!(
            view.live_nodes(TTL),
            BTreeSet::from(["b".into()]),
            "a's heartbeat is 4 s old"
        );
        view.apply(None, "b", "api", &Op::Heartbeat, 7 * S, TTL);
        assert_eq!(view.free(3), vec![0, 1, 2], "b's lease ran out at 6");
    }
}
