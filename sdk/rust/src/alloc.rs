//! The wasm32 allocator: a bump allocator. Every hook call runs in a fresh
//! instance that the host discards afterwards (docs/abi.md, "One call"), so
//! memory never needs to be reused within a module's short life, and a
//! pointer bump costs a few instructions where dlmalloc's bookkeeping cost
//! hundreds of fuel per allocation (decoding a request allocates per string).
//! It also keeps dlmalloc (~10 KB) out of the module.
//!
//! Growing the last allocation (a `Vec` being pushed to) happens in place.
//! Disable the `bump-alloc` feature to get std's allocator back, e.g. for a
//! plugin that allocates far more than its request in a loop.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;

const PAGE: usize = 64 * 1024;

pub struct BumpAlloc {
    /// (next free byte, end of the memory we own, start of the last allocation)
    state: UnsafeCell<(usize, usize, usize)>,
}

// wasm32-unknown-unknown is single-threaded.
unsafe impl Sync for BumpAlloc {}

impl BumpAlloc {
    pub const fn new() -> Self {
        BumpAlloc { state: UnsafeCell::new((0, 0, 0)) }
    }
}

impl Default for BumpAlloc {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for BumpAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (next, end, last) = &mut *self.state.get();
        let start = match next.checked_add(layout.align() - 1) {
            Some(n) => n & !(layout.align() - 1),
            None => return std::ptr::null_mut(),
        };
        let stop = match start.checked_add(layout.size()) {
            Some(s) => s,
            None => return std::ptr::null_mut(),
        };
        if stop > *end || *end == 0 {
            // Grow by at least 2 pages: memory.grow is cheap, but each grow is
            // a call out of the guest, and the pages stay few (wasmtime resets
            // only the pages an instance dirtied: docs/runtime.md).
            let need = if *end == 0 { layout.size() + layout.align() } else { stop - *end };
            let pages = ((need + PAGE - 1) / PAGE).max(2);
            let prev = core::arch::wasm32::memory_grow(0, pages);
            if prev == usize::MAX {
                return std::ptr::null_mut();
            }
            if *end != prev * PAGE {
                // First use (or someone else grew memory): start in the new region.
                *next = prev * PAGE;
                *end = (prev + pages) * PAGE;
                return self.alloc(layout);
            }
            *end = (prev + pages) * PAGE;
        }
        *next = stop;
        *last = start;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // Freeing the last allocation gives its bytes back; anything else waits
        // for the instance to be discarded.
        let (next, _, last) = &mut *self.state.get();
        if ptr as usize == *last {
            *next = *last;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (next, end, last) = &mut *self.state.get();
        if ptr as usize == *last && *last + new_size <= *end {
            *next = *last + new_size; // the last allocation grows in place
            return ptr;
        }
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
        }
        new
    }
}
