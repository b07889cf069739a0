//! The shared packet pool: one slab of packet slots for a whole HTB tree, and
//! intrusive FIFO lists over it.
//!
//! Every leaf queue (and every flow inside SFQ / FQ-CoDel) is a
//! [`PacketList`]: a head index, a tail index and two counters, 24 bytes. The
//! packets themselves live in one `Vec` sized once for the most frames that
//! can be in flight (the UMEM frame count), so queues never allocate and a
//! tree with 100,000 leaves and 1,024 flows per leaf costs 24 bytes per empty
//! flow instead of a preallocated ring each.
//!
//! Layout, for the cache: a packet is 32 bytes and its slot is 32-byte
//! aligned, so a cold packet costs one cache line, never two; the list links
//! are kept apart in a dense `u32` array (4 bytes a slot, 1.6 MB for 400k
//! slots), so linking a packet behind a flow's tail writes to that array
//! instead of dirtying the tail packet's line, and walking the free list
//! stays in cache.
//!
//! The module also holds the tree's `Arena`: the memory its large tables
//! (packet slots, classes, FQ-CoDel flow tables) are carved from, on 2 MiB
//! pages where the kernel grants them, and `Table`, a fixed-size slice
//! living either there or on the ordinary heap.

use std::alloc::Layout;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use crate::packet::Packet;

/// Index meaning "no slot".
pub const NIL: u32 = u32::MAX;

/// One packet, aligned so that it never straddles two cache lines.
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct Slot {
    packet: Packet,
}

/// A fixed-capacity slab of packet slots with a free list.
#[derive(Debug)]
pub struct PacketPool {
    slots: Table<Slot>,
    /// Next slot of the list (queue or free list) each slot is on.
    next: Table<u32>,
    free_head: u32,
    in_use: u32,
}

const EMPTY_PACKET: Packet = Packet {
    addr: 0,
    len: 0,
    hash: 0,
    enqueued_at: 0,
    l3_offset: 0,
    flags: 0,
    remark: 0,
    app: crate::flow::NONE,
};

impl PacketPool {
    /// A pool that can hold `capacity` packets at once (at most `u32::MAX - 1`).
    pub fn new(capacity: u32) -> PacketPool {
        PacketPool::new_in(capacity, &mut Arena::heap())
    }

    /// [`PacketPool::new`] with its slots and links carved from `arena`.
    pub(crate) fn new_in(capacity: u32, arena: &mut Arena) -> PacketPool {
        let capacity = capacity.min(NIL - 1);
        let slots = Table::from_fn(arena, capacity as usize, |_| Slot {
            packet: EMPTY_PACKET,
        });
        let next = Table::from_fn(arena, capacity as usize, |i| {
            let i = i as u32;
            if i + 1 < capacity {
                i + 1
            } else {
                NIL
            }
        });
        PacketPool {
            slots,
            next,
            free_head: if capacity > 0 { 0 } else { NIL },
            in_use: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Bytes of arena a pool of `capacity` slots takes (an upper bound, for
    /// sizing an [`Arena`]).
    pub(crate) fn arena_bytes(capacity: u32) -> usize {
        let n = capacity.min(NIL - 1) as usize;
        table_bytes::<Slot>(n) + table_bytes::<u32>(n)
    }

    /// Packets currently held by some list.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    #[inline]
    fn alloc(&mut self, packet: Packet) -> Option<u32> {
        let idx = self.free_head;
        let next = self.next.get_mut(idx as usize)?;
        self.free_head = *next;
        *next = NIL;
        self.slots[idx as usize].packet = packet;
        self.in_use += 1;
        Some(idx)
    }

    #[inline]
    fn release(&mut self, idx: u32) -> Packet {
        let packet = self.slots[idx as usize].packet;
        self.next[idx as usize] = self.free_head;
        self.free_head = idx;
        self.in_use -= 1;
        packet
    }

    /// Ask the CPU to start loading the packet at the head of `list` (see
    /// [`prefetch`]). Batched paths call this a few packets ahead.
    #[inline]
    pub(crate) fn prefetch_head(&self, list: &PacketList) {
        if let Some(slot) = self.slots.get(list.head as usize) {
            prefetch(slot);
        }
        // Popping it reads its link too (a different line: links are a
        // dense array of their own).
        if let Some(next) = self.next.get(list.head as usize) {
            prefetch(next);
        }
    }
}

/// Start loading the cache line holding `*r` without waiting for it: a hint
/// to the CPU, with no effect on what the program computes. The batched
/// scheduler paths issue these for a whole batch before touching any of it,
/// so the cache misses of the batch overlap instead of following each other.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    prefetch_addr((r as *const T).cast::<u8>());
}

/// [`prefetch`] every cache line of the bytes `[start, end)`.
#[inline(always)]
pub(crate) fn prefetch_range(start: *const u8, end: *const u8) {
    let mut line = (start as usize) & !63;
    while line < end as usize {
        prefetch_addr(line as *const u8);
        line += 64;
    }
}

/// [`prefetch`] by address, for the lines of a large struct after its first.
/// Any address is fine: nothing is read through it. A no-op on other
/// architectures than x86_64.
#[inline(always)]
pub(crate) fn prefetch_addr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch only hints the cache: it never faults, whatever
        // the address, and reads nothing into the program. SSE, which it
        // needs, is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An intrusive FIFO of packets stored in a [`PacketPool`].
///
/// A list must only ever be used with the pool it was filled from; every
/// list in one HTB tree shares the tree's pool.
#[derive(Clone, Copy, Debug)]
pub struct PacketList {
    head: u32,
    tail: u32,
    len: u32,
    bytes: u64,
}

impl Default for PacketList {
    fn default() -> Self {
        PacketList::new()
    }
}

impl PacketList {
    pub const fn new() -> PacketList {
        PacketList {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of `Packet::len` of the packets in the list.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Append; gives the packet back when the pool is exhausted.
    #[inline]
    pub fn push_back(&mut self, pool: &mut PacketPool, packet: Packet) -> Result<(), Packet> {
        let enqueued_at = packet.enqueued_at;
        self.push_back_at(pool, packet, enqueued_at)
    }

    /// [`PacketList::push_back`] with `enqueued_at` set on the way in. The
    /// stamp is written into the slot rather than into a copy of the packet
    /// first: a narrow store into a packet that is then copied whole makes
    /// the CPU wait for the store to land (a store-forwarding stall, ~5% of
    /// an enqueue).
    #[inline]
    pub(crate) fn push_back_at(
        &mut self,
        pool: &mut PacketPool,
        packet: Packet,
        enqueued_at: u64,
    ) -> Result<(), Packet> {
        let Some(idx) = pool.alloc(packet) else {
            return Err(Packet {
                enqueued_at,
                ..packet
            });
        };
        pool.slots[idx as usize].packet.enqueued_at = enqueued_at;
        if self.tail == NIL {
            self.head = idx;
        } else {
            pool.next[self.tail as usize] = idx;
        }
        self.tail = idx;
        self.len += 1;
        self.bytes += u64::from(packet.len);
        Ok(())
    }

    #[inline]
    pub fn pop_front(&mut self, pool: &mut PacketPool) -> Option<Packet> {
        let idx = self.head;
        if idx == NIL {
            return None;
        }
        self.head = pool.next[idx as usize];
        if self.head == NIL {
            self.tail = NIL;
        } else {
            // The next packet of this queue is the next one it gives out,
            // often soon (a flow served for a quantum, a batch): start
            // loading it now rather than chase the list one miss at a time.
            prefetch(&pool.slots[self.head as usize]);
            prefetch(&pool.next[self.head as usize]);
        }
        let packet = pool.release(idx);
        self.len -= 1;
        self.bytes -= u64::from(packet.len);
        Some(packet)
    }

    pub fn front<'p>(&self, pool: &'p PacketPool) -> Option<&'p Packet> {
        if self.head == NIL {
            return None;
        }
        Some(&pool.slots[self.head as usize].packet)
    }

    /// Mutable access to the head packet (e.g. to set a CE mark in place).
    pub fn front_mut<'p>(&self, pool: &'p mut PacketPool) -> Option<&'p mut Packet> {
        if self.head == NIL {
            return None;
        }
        Some(&mut pool.slots[self.head as usize].packet)
    }

    /// Visit every packet front to back (used by SFQ's rehash on perturbation
    /// and by tests; not on the per-packet path).
    pub fn for_each(&self, pool: &PacketPool, mut f: impl FnMut(&Packet)) {
        let mut idx = self.head;
        while idx != NIL {
            f(&pool.slots[idx as usize].packet);
            idx = pool.next[idx as usize];
        }
    }
}

// ---- The tree's table arena ----------------------------------------------

/// A transparent huge page on x86_64 (and the PMD size on aarch64 with 4 KiB
/// base pages).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Tables that share a cache line with another table would make one table's
/// writes evict the other's reads: every table starts on its own line.
const TABLE_ALIGN: usize = 64;

/// A tree whose tables take less than this stays on the ordinary heap. Such
/// a tree is within the reach of the CPU's second-level TLB on 4 KiB pages
/// (Zen 3: 2,048 entries, 8 MiB), so huge pages would buy nothing, and the
/// first touch of a huge page costs zeroing 2 MiB: the tests and the
/// simulator build thousands of small trees.
pub(crate) const ARENA_MIN_BYTES: usize = 8 << 20;

/// Bytes a [`Table`] of `len` `T`s takes in an [`Arena`], alignment padding
/// included: what a caller adds up to size an arena before filling it.
pub(crate) fn table_bytes<T>(len: usize) -> usize {
    let align = std::mem::align_of::<T>().max(TABLE_ALIGN);
    len.saturating_mul(std::mem::size_of::<T>())
        .saturating_add(align)
}

/// Memory for one tree's large tables: a single mapping, 2 MiB aligned,
/// that the kernel is asked to back with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`; in THP's `madvise` mode, the default of many
/// distributions and of this project's machine, the heap never gets them).
///
/// Why: at 100,000 classes a tree's tables are ~450 MB. On 4 KiB pages
/// nearly every table access of a packet misses the TLB as well as the
/// cache, and the page walk is one more dependent memory access; on 2 MiB
/// pages the whole tree is within the TLB's reach (measured: see
/// `docs/performance.md`, "Scheduler").
///
/// Tables are carved front to back and never handed back one by one; the
/// mapping goes when the arena and every table carved from it are gone.
/// When there is no mapping (a tree below [`ARENA_MIN_BYTES`], mmap
/// refused, another OS) or a table doesn't fit, the table comes from the
/// global allocator instead: slower for a big tree, identical otherwise.
#[derive(Debug)]
pub(crate) struct Arena {
    region: Option<Arc<Region>>,
    used: usize,
    /// Tables that went to the heap although there is a mapping (it was
    /// full): a sizing mistake, which costs speed, not correctness.
    spilled: usize,
}

impl Arena {
    /// An arena that puts every table on the ordinary heap.
    pub(crate) fn heap() -> Arena {
        Arena {
            region: None,
            used: 0,
            spilled: 0,
        }
    }

    /// An arena for tables adding up to at most `bytes` (see
    /// [`table_bytes`]); on the heap below [`ARENA_MIN_BYTES`]. The mapping
    /// only reserves address space: pages are faulted in (as huge pages
    /// when granted) as the tables are filled.
    pub(crate) fn with_capacity(bytes: usize) -> Arena {
        let region = if bytes >= ARENA_MIN_BYTES {
            Region::map(bytes).map(Arc::new)
        } else {
            None
        };
        Arena {
            region,
            used: 0,
            spilled: 0,
        }
    }

    /// True when the tables are in a mapping the kernel accepted
    /// `MADV_HUGEPAGE` for (whether it found free huge pages is up to it).
    pub(crate) fn huge_pages(&self) -> bool {
        self.region.as_ref().is_some_and(|r| r.huge)
    }

    /// How many tables went to the heap because the mapping was full.
    pub(crate) fn spilled(&self) -> usize {
        self.spilled
    }

    /// The next `layout.size()` bytes, aligned, and a handle that keeps the
    /// mapping alive; None when there is no mapping or it is full.
    fn carve(&mut self, layout: Layout) -> Option<(NonNull<u8>, Arc<Region>)> {
        let region = self.region.as_ref()?;
        let align = layout.align().max(TABLE_ALIGN);
        if align > HUGE_PAGE {
            return None;
        }
        // The mapping starts 2 MiB aligned, so an aligned offset is an
        // aligned address.
        let span = self
            .used
            .checked_next_multiple_of(align)
            .and_then(|start| Some((start, start.checked_add(layout.size())?)))
            .filter(|&(_, end)| end <= region.len);
        let Some((start, end)) = span else {
            self.spilled += 1;
            return None;
        };
        self.used = end;
        // SAFETY: start <= end <= region.len, so the result points into (or
        // one past the end of) the mapping; the offset fits isize because
        // the mapping's length does.
        let ptr = unsafe { region.base.add(start) };
        Some((ptr, Arc::clone(region)))
    }
}

/// One anonymous mapping, owned: unmapped when dropped. It never reads or
/// writes the memory itself; the [`Table`]s carved from it do, each on its
/// own disjoint part.
#[derive(Debug)]
struct Region {
    base: NonNull<u8>,
    len: usize,
    huge: bool,
}

// SAFETY: a Region is only an owner of raw memory that it never accesses;
// which thread unmaps it does not matter. Access to the bytes goes through
// the Tables carved from it, which carry their own Send/Sync bounds.
unsafe impl Send for Region {}
// SAFETY: as for Send; a shared &Region gives access to nothing.
unsafe impl Sync for Region {}

impl Region {
    /// Map `bytes` (rounded up to whole huge pages) at a 2 MiB-aligned
    /// address and ask for huge pages; None when the kernel refuses the
    /// mapping.
    #[cfg(target_os = "linux")]
    fn map(bytes: usize) -> Option<Region> {
        let len = bytes.checked_next_multiple_of(HUGE_PAGE)?;
        // mmap only promises page alignment: map one huge page more and
        // trim the ends.
        let span = len.checked_add(HUGE_PAGE)?;
        // SAFETY: a new private anonymous mapping at an address of the
        // kernel's choosing; it cannot alias any memory the program uses.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE);
        let head = aligned - start;
        let tail = span - head - len;
        // SAFETY: [start, aligned) and [aligned + len, start + span) are the
        // two ends of the mapping just made, page aligned (mmap returns page
        // aligned memory and HUGE_PAGE and len are page multiples), and
        // nothing refers to them. Failing to unmap them would only waste
        // address space, so the results are not checked.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        // SAFETY: madvise changes only how the kernel backs this range,
        // which is ours and not touched yet, so the first fault of each
        // 2 MiB can take a huge page. When THP is off or unsupported it
        // fails and the range stays on 4 KiB pages: still correct.
        let huge =
            unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } == 0;
        Some(Region {
            base: NonNull::new(aligned as *mut u8)?,
            len,
            huge,
        })
    }

    /// No huge page arena off Linux: every table goes on the heap.
    #[cfg(not(target_os = "linux"))]
    fn map(_bytes: usize) -> Option<Region> {
        None
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: base/len is exactly the mapping made in `map`, and
            // the last Arc (every Table holds one) is going, so no table
            // can touch it any more.
            unsafe {
                libc::munmap(self.base.as_ptr().cast(), self.len);
            }
        }
    }
}

/// A fixed-length slice of `T` that lives in an [`Arena`]'s mapping or, when
/// the arena has none or is full, in a heap allocation of its own. It owns
/// its elements (drops them when dropped) and derefs to `[T]`, so code
/// written over a `Box<[T]>` or `Vec<T>` reads the same.
pub(crate) struct Table<T> {
    ptr: NonNull<T>,
    len: usize,
    /// Keeps the mapping alive; None: `ptr`/`len` is a leaked `Box<[T]>`.
    region: Option<Arc<Region>>,
}

// SAFETY: a Table owns its elements exclusively, like a Box<[T]>: sending
// it sends them. The Arc<Region> it holds is Send.
unsafe impl<T: Send> Send for Table<T> {}
// SAFETY: &Table only gives &[T], as &Box<[T]> does.
unsafe impl<T: Sync> Sync for Table<T> {}

impl<T> Table<T> {
    /// `len` elements, element `i` being `f(i)`.
    pub(crate) fn from_fn(
        arena: &mut Arena,
        len: usize,
        mut f: impl FnMut(usize) -> T,
    ) -> Table<T> {
        if let Some((base, region)) = Table::<T>::carve(arena, len) {
            let ptr = base.cast::<T>();
            for i in 0..len {
                // SAFETY: the carved block holds `len` Ts, aligned for T, and
                // belongs to this table alone; element i < len is written
                // once, without reading or dropping what was there. If `f`
                // panics the elements written so far are leaked, not dropped
                // twice.
                unsafe { ptr.as_ptr().add(i).write(f(i)) };
            }
            return Table {
                ptr,
                len,
                region: Some(region),
            };
        }
        Table::from_box((0..len).map(f).collect())
    }

    /// The elements of `v`, moved into the arena.
    pub(crate) fn from_vec(arena: &mut Arena, mut v: Vec<T>) -> Table<T> {
        let len = v.len();
        let Some((base, region)) = Table::<T>::carve(arena, len) else {
            return Table::from_box(v.into_boxed_slice());
        };
        let ptr = base.cast::<T>();
        // SAFETY: the carved block holds `len` Ts and belongs to this table
        // alone, and cannot overlap the vector's heap buffer. The elements
        // are moved bit for bit; setting the vector's length to 0 first
        // means they are owned by the table only and dropped once, by it.
        unsafe {
            v.set_len(0);
            ptr::copy_nonoverlapping(v.as_ptr(), ptr.as_ptr(), len);
        }
        Table {
            ptr,
            len,
            region: Some(region),
        }
    }

    /// Room for `len` Ts in the arena, or None (no mapping, full, or
    /// nothing to store).
    fn carve(arena: &mut Arena, len: usize) -> Option<(NonNull<u8>, Arc<Region>)> {
        if len == 0 || std::mem::size_of::<T>() == 0 {
            return None;
        }
        arena.carve(Layout::array::<T>(len).ok()?)
    }

    fn from_box(b: Box<[T]>) -> Table<T> {
        let len = b.len();
        Table {
            ptr: NonNull::from(Box::leak(b)).cast::<T>(),
            len,
            region: None,
        }
    }

    /// Whether the elements live in an arena mapping (rather than the heap).
    #[cfg(test)]
    pub(crate) fn in_arena(&self) -> bool {
        self.region.is_some()
    }
}

impl<T> Deref for Table<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr/len describe `len` initialised Ts owned by this table,
        // in memory kept alive by `region` or by the leaked Box, for as long
        // as the table lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for Table<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Table<T> {
    fn drop(&mut self) {
        let slice = ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        if self.region.is_some() {
            // SAFETY: the `len` elements were initialised when the table was
            // made and are dropped only here; the mapping stays until
            // `region` is dropped right after this.
            unsafe { ptr::drop_in_place(slice) };
        } else {
            // SAFETY: ptr/len came from Box::leak of a Box<[T]> of exactly
            // this length (`from_box`); rebuilding it frees it once.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Frame;

    fn pkt(addr: u64, len: u32) -> Packet {
        Packet::new(Frame { addr, len }, 0)
    }

    #[test]
    fn fifo_order_and_counters() {
        let mut pool = PacketPool::new(4);
        let mut a = PacketList::new();
        let mut b = PacketList::new();
        a.push_back(&mut pool, pkt(1, 100)).unwrap();
        b.push_back(&mut pool, pkt(2, 200)).unwrap();
        a.push_back(&mut pool, pkt(3, 300)).unwrap();
        assert_eq!((a.len(), a.bytes()), (2, 400));
        assert_eq!(pool.in_use(), 3);
        assert_eq!(a.front(&pool).unwrap().addr, 1);
        assert_eq!(a.pop_front(&mut pool).unwrap().addr, 1);
        assert_eq!(a.pop_front(&mut pool).unwrap().addr, 3);
        assert!(a.pop_front(&mut pool).is_none());
        assert_eq!(b.pop_front(&mut pool).unwrap().addr, 2);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_packet_slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::align_of::<Slot>(), 32);
    }

    #[test]
    fn small_arenas_stay_on_the_heap() {
        let mut arena = Arena::with_capacity(ARENA_MIN_BYTES - 1);
        let t = Table::from_fn(&mut arena, 10, |i| i as u32);
        assert!(!t.in_arena());
        assert!(!arena.huge_pages());
        assert_eq!(&t[..3], &[0, 1, 2]);
    }

    #[test]
    fn arena_tables_are_aligned_disjoint_and_fall_back_when_full() {
        let mut arena = Arena::with_capacity(ARENA_MIN_BYTES);
        let a = Table::from_fn(&mut arena, 3, |i| i as u8);
        let b = Table::from_vec(&mut arena, vec![7u64; 1000]);
        assert!(a.in_arena() && b.in_arena());
        assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(b.as_ptr() as usize % 64, 0);
        assert!(b.as_ptr() as usize >= a.as_ptr() as usize + 64);
        assert_eq!((&a[..], b.iter().sum::<u64>()), (&[0u8, 1, 2][..], 7000));
        // More than is left: on the heap, still correct.
        assert_eq!(arena.spilled(), 0);
        let c = Table::from_fn(&mut arena, ARENA_MIN_BYTES, |_| 1u8);
        assert!(!c.in_arena());
        assert_eq!(arena.spilled(), 1);
        assert_eq!(c.len(), ARENA_MIN_BYTES);
        // The mapping outlives the arena while tables use it.
        drop(arena);
        assert_eq!(b[999], 7);
    }

    #[test]
    fn table_elements_are_dropped_once() {
        use std::rc::Rc;
        let live = Rc::new(());
        let mut arena = Arena::with_capacity(ARENA_MIN_BYTES);
        let t = Table::from_fn(&mut arena, 5, |_| Rc::clone(&live));
        let v = Table::from_vec(&mut arena, vec![Rc::clone(&live); 4]);
        let h = Table::from_fn(&mut Arena::heap(), 3, |_| Rc::clone(&live));
        assert!(t.in_arena() && v.in_arena() && !h.in_arena());
        assert_eq!(Rc::strong_count(&live), 13);
        drop((t, v, h));
        assert_eq!(Rc::strong_count(&live), 1);
    }

    #[test]
    fn exhausted_pool_gives_the_packet_back() {
        let mut pool = PacketPool::new(1);
        let mut a = PacketList::new();
        a.push_back(&mut pool, pkt(1, 1)).unwrap();
        assert_eq!(a.push_back(&mut pool, pkt(2, 1)).unwrap_err().addr, 2);
        a.pop_front(&mut pool).unwrap();
        a.push_back(&mut pool, pkt(3, 1)).unwrap();
        assert_eq!(a.front(&pool).unwrap().addr, 3);
    }
}
