//! The TCP-like sender: a Reno-style congestion window fed by ACK and loss
//! notices that arrive one RTT after the shaper sent or dropped a packet.

use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FbKind {
    Ack,
    AckCe,
    Loss,
}

/// A congestion-control signal in flight back to the sender.
#[derive(Clone, Copy, Debug)]
pub(super) struct Feedback {
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) kind: FbKind,
}

/// A Reno-style sender: window in packets, slow start, additive increase of
/// 1/cwnd per ACK, multiplicative decrease by half at most once per window of
/// data (NewReno's "recover" point), on a loss or an ECN echo, each learnt
/// one RTT after it happened. No retransmissions: a lost packet is lost
/// goodput. The sender is window-limited only: it sends whenever
/// inflight < cwnd.
pub(super) struct Conn {
    pub(super) flow: u32,
    pub(super) source: u32,
    pub(super) rtt: u64,
    pub(super) ect: bool,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) cwnd: u32,
    pub(super) ssthresh: u32,
    /// ACKs counted towards the next +1 in congestion avoidance.
    pub(super) ca_acc: u32,
    pub(super) max_cwnd: u32,
    pub(super) next_seq: u64,
    /// Signals about packets sent before this sequence number belong to a
    /// window that already halved.
    pub(super) recover: u64,
    pub(super) inflight: u32,
    pub(super) feedback: VecDeque<Feedback>,
    pub(super) has_event: bool,
    pub(super) reductions: u64,
    pub(super) losses: u64,
    pub(super) ce_echoes: u64,
}

impl Conn {
    #[inline]
    pub(super) fn on_ack(&mut self, seq: u64, ce: bool) {
        self.inflight -= 1;
        if ce && self.ect {
            self.ce_echoes += 1;
            self.congestion(seq);
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
        } else {
            self.ca_acc += 1;
            if self.ca_acc >= self.cwnd {
                self.ca_acc = 0;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(self.max_cwnd);
    }

    #[inline]
    pub(super) fn on_loss(&mut self, seq: u64) {
        self.inflight -= 1;
        self.losses += 1;
        self.congestion(seq);
    }

    pub(super) fn congestion(&mut self, seq: u64) {
        if seq < self.recover {
            return;
        }
        self.ssthresh = (self.cwnd / 2).max(2);
        self.cwnd = self.ssthresh;
        self.ca_acc = 0;
        self.recover = self.next_seq;
        self.reductions += 1;
    }
}
