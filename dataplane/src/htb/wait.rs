//! The wait queue: classes that are not in `CanSend` mode, keyed by the time
//! their mode may change. An indexed binary min-heap over class indexes, so a
//! class can be removed from the middle in O(log n) when a charge changes its
//! mode early. Sized once for every class; it never allocates afterwards.

use crate::pool::NIL;

#[derive(Debug)]
pub(super) struct WaitQueue {
    /// Heap of class indexes ordered by `key[class]`.
    heap: Vec<u32>,
    /// Position of each class in `heap`, or NIL.
    pos: Vec<u32>,
    /// Deadline of each class (meaningful while queued).
    key: Vec<u64>,
}

impl WaitQueue {
    pub(super) fn new(classes: usize) -> WaitQueue {
        WaitQueue {
            heap: Vec::with_capacity(classes),
            pos: vec![NIL; classes],
            key: vec![0; classes],
        }
    }

    pub(super) fn contains(&self, class: u32) -> bool {
        self.pos[class as usize] != NIL
    }

    /// The deadline of `class`, if it is queued.
    pub(super) fn key_of(&self, class: u32) -> Option<u64> {
        self.contains(class).then(|| self.key[class as usize])
    }

    /// Earliest deadline and its class.
    pub(super) fn peek(&self) -> Option<(u64, u32)> {
        self.heap.first().map(|&c| (self.key[c as usize], c))
    }

    pub(super) fn push(&mut self, class: u32, key: u64) {
        debug_assert!(!self.contains(class));
        self.key[class as usize] = key;
        let i = self.heap.len();
        self.heap.push(class);
        self.pos[class as usize] = i as u32;
        self.sift_up(i);
    }

    pub(super) fn remove(&mut self, class: u32) {
        let i = self.pos[class as usize];
        if i == NIL {
            return;
        }
        let i = i as usize;
        let last = self.heap.len() - 1;
        self.swap(i, last);
        self.heap.pop();
        self.pos[class as usize] = NIL;
        if i < self.heap.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (ca, cb) = (self.heap[a], self.heap[b]);
        (self.key[ca as usize], ca) < (self.key[cb as usize], cb)
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let l = 2 * i + 1;
            if l >= self.heap.len() {
                break;
            }
            let r = l + 1;
            let child = if r < self.heap.len() && self.less(r, l) {
                r
            } else {
                l
            };
            if !self.less(child, i) {
                break;
            }
            self.swap(i, child);
            i = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_key_order_with_removals() {
        let mut w = WaitQueue::new(10);
        for (c, k) in [(0, 50), (1, 10), (2, 30), (3, 20), (4, 40)] {
            w.push(c, k);
        }
        w.remove(3);
        w.remove(3);
        let mut out = vec![];
        while let Some((k, c)) = w.peek() {
            out.push((k, c));
            w.remove(c);
        }
        assert_eq!(out, vec![(10, 1), (30, 2), (40, 4), (50, 0)]);
        assert!(!w.contains(1));
    }
}
